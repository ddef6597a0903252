"""mmvae-service HTTP API: FastAPI app serving multimodal VAEs (see `service.app.create_app`)."""
