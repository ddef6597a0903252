"""HTTP routes, one module per area; `service.app.create_app` includes their routers."""
