"""The cost of an inference request, computed from its parameters before any work is done.

Three measures, each with a limit in the settings (422 naming the parameter and the setting
when over it): `values`, the floats the answer holds (rows × draws × elements of each output);
`pixels`, the PNG pixels it renders (output image pixels × png_scale²); `work`, the model
passes it costs times the model's parameter count (a FLOP proxy, so the same request costs more
on a larger model). Requests whose work is above `MMVAE_HEAVY_REQUEST_WORK` run in their own
lane (service/batching.py) so that they cannot hold up cheap ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.models.config import ModalitySpec
from service.errors import over_limit
from service.settings import Settings


@dataclass(frozen=True)
class Cost:
    """What a request will cost; `field` names the request parameter that drives it most."""

    values: int
    pixels: int
    work: int
    field: str

    def check(self, settings: Settings) -> Cost:
        """Raise a 422 for the first measure over its limit; the cost itself otherwise."""
        for measure, value, limit, setting in (
            ("values", self.values, settings.max_output_values, "MMVAE_MAX_OUTPUT_VALUES"),
            ("pixels", self.pixels, settings.max_png_pixels, "MMVAE_MAX_PNG_PIXELS"),
            ("work", self.work, settings.max_request_work, "MMVAE_MAX_REQUEST_WORK"),
        ):
            if value > limit:
                raise over_limit(f"{self.field} (output {measure})", value, limit, setting)
        return self

    def heavy(self, settings: Settings) -> bool:
        return self.work > settings.heavy_request_work


def output_cost(
    specs: Sequence[ModalitySpec],
    draws: int,
    passes: int,
    parameters: int,
    png_scale: int | None,
    field: str,
) -> Cost:
    """`draws` outputs of each modality in `specs`, costing `passes` model passes; image
    outputs rendered as PNG when `png_scale` is given (None: numbers only)."""
    values = draws * sum(math.prod(s.shape) for s in specs)
    pixels = 0
    if png_scale is not None:
        images = [s for s in specs if s.kind == "image"]
        pixels = draws * sum(math.prod(s.shape[1:]) for s in images) * png_scale**2
    return Cost(values, pixels, passes * parameters, field)


# t-SNE and UMAP optimise a layout over each point's neighbours for hundreds of iterations:
# counted as this much work per point (about 2 ms of one core for t-SNE, as measured), so that
# a map of more than a few dozen points runs in the heavy lane.
NEIGHBOUR_MAP_WORK = 4 * 10**6


def map_cost(rows: int, dim: int, passes: int, parameters: int, method: str) -> Cost:
    """A latent map of `rows` points in a `dim`-dimensional space: their means, coordinates and
    labels; `passes` encoder passes per row, then the projection (`method`) of the means."""
    projection = rows * dim * dim if method == "pca" else rows * NEIGHBOUR_MAP_WORK
    return Cost(rows * (dim + 3), 0, rows * passes * parameters + projection, "n")
