"""Named radiomics configurations: ``clinical``, ``ibsi-digital-phantom`` and the IBSI 1 CT configurations A-E.

A-E follow the IBSI 1 reference manual (Zwanenburg et al., arXiv:1612.07003, table "configurations for the CT
radiomics phantom"): A 2D, no interpolation, range [-500, 400] HU, FBS 25 HU; B 2D, bilinear in-plane 2 x 2 mm,
rounding, [-500, 400] HU, FBN 32; C 3D, trilinear 2 x 2 x 2 mm, rounding, [-1000, 400] HU, FBS 25 HU; D as C with
mean +- 3 SD outlier re-segmentation and FBN 32; E as D with tricubic spline interpolation. IVH: A and B use the
rounded HU (1 HU steps), C uses FBS 2.5 HU, D and E FBN 1000 bins.

``clinical`` is our CT default, computed by pyradiomics (see :mod:`core.radiomics.clinical`): isotropic 1 mm
B-spline resampling, re-segmentation to [-1000, 400] HU, fixed bin width 25 HU, original + LoG (sigma 1, 2, 3 mm) +
wavelet (coif1, 8 sub-bands) images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CONFIGS", "RadiomicsConfig", "get_config"]


@dataclass(frozen=True)
class RadiomicsConfig:
    """Processing settings; spacings (z, y, x) in mm, intensities in the image unit (HU for CT)."""

    name: str
    description: str
    engine: Literal["ibsi", "pyradiomics"] = "ibsi"
    dims: Literal["2D", "3D", "all"] = "3D"
    spacing_mm: tuple[float | None, float | None, float | None] | None = None
    interpolation_order: int = 1
    round_intensities: bool = False
    resegment_range: tuple[float, float] | None = None
    outlier_sd: float | None = None
    discretisation: Literal["none", "fbs", "fbn"] = "none"
    bin_width: float = 25.0
    bin_count: int = 32
    ivh: tuple[Literal["none", "fbs", "fbn"], float] = ("none", 1.0)
    log_sigmas_mm: tuple[float, ...] = ()
    wavelet: str | None = None
    pyradiomics_settings: dict[str, object] = field(default_factory=dict)


_CT_RANGE_2D = (-500.0, 400.0)
_CT_RANGE_3D = (-1000.0, 400.0)

CONFIGS: dict[str, RadiomicsConfig] = {
    c.name: c
    for c in (
        RadiomicsConfig(
            "ibsi-digital-phantom",
            "IBSI 1 digital phantom: no resampling, no re-segmentation, no discretisation (grey levels as stored)",
            dims="all",
        ),
        RadiomicsConfig(
            "ibsi-a",
            "IBSI CT config A: 2D, no interpolation, re-segmentation [-500, 400] HU, FBS 25 HU",
            dims="2D",
            resegment_range=_CT_RANGE_2D,
            discretisation="fbs",
            bin_width=25.0,
        ),
        RadiomicsConfig(
            "ibsi-b",
            "IBSI CT config B: 2D, bilinear to 2 x 2 mm in-plane, rounding, [-500, 400] HU, FBN 32",
            dims="2D",
            spacing_mm=(None, 2.0, 2.0),
            interpolation_order=1,
            round_intensities=True,
            resegment_range=_CT_RANGE_2D,
            discretisation="fbn",
            bin_count=32,
        ),
        RadiomicsConfig(
            "ibsi-c",
            "IBSI CT config C: 3D, trilinear to 2 mm, rounding, [-1000, 400] HU, FBS 25 HU",
            spacing_mm=(2.0, 2.0, 2.0),
            interpolation_order=1,
            round_intensities=True,
            resegment_range=_CT_RANGE_3D,
            discretisation="fbs",
            bin_width=25.0,
            ivh=("fbs", 2.5),
        ),
        RadiomicsConfig(
            "ibsi-d",
            "IBSI CT config D: 3D, trilinear to 2 mm, rounding, [-1000, 400] HU + mean +- 3 SD, FBN 32",
            spacing_mm=(2.0, 2.0, 2.0),
            interpolation_order=1,
            round_intensities=True,
            resegment_range=_CT_RANGE_3D,
            outlier_sd=3.0,
            discretisation="fbn",
            bin_count=32,
            ivh=("fbn", 1000),
        ),
        RadiomicsConfig(
            "ibsi-e",
            "IBSI CT config E: 3D, tricubic spline to 2 mm, rounding, [-1000, 400] HU + mean +- 3 SD, FBN 32",
            spacing_mm=(2.0, 2.0, 2.0),
            interpolation_order=3,
            round_intensities=True,
            resegment_range=_CT_RANGE_3D,
            outlier_sd=3.0,
            discretisation="fbn",
            bin_count=32,
            ivh=("fbn", 1000),
        ),
        RadiomicsConfig(
            "clinical",
            "CT default: 1 mm isotropic B-spline, [-1000, 400] HU, bin width 25 HU, original + LoG 1/2/3 mm + wavelet",
            engine="pyradiomics",
            spacing_mm=(1.0, 1.0, 1.0),
            resegment_range=_CT_RANGE_3D,
            discretisation="fbs",
            bin_width=25.0,
            log_sigmas_mm=(1.0, 2.0, 3.0),
            wavelet="coif1",
            pyradiomics_settings={
                "binWidth": 25.0,
                "resampledPixelSpacing": [1.0, 1.0, 1.0],
                "interpolator": "sitkBSpline",
                "resegmentRange": [-1000.0, 400.0],
                "resegmentShape": True,
                "padDistance": 5,
                "label": 1,
                "additionalInfo": False,
                "geometryTolerance": 1e-3,
            },
        ),
    )
}


def get_config(name: str) -> RadiomicsConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown radiomics configuration {name!r}; known: {', '.join(sorted(CONFIGS))}") from None
