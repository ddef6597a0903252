"""Fixtures of the metric tests live in `metric_fixtures`; importing them registers them."""

from metric_fixtures import dataset, stub_factory, trained  # noqa: F401
