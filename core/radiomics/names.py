"""IBSI feature tags and their pyradiomics 3.1 equivalents (where pyradiomics computes the same quantity).

pyradiomics computes texture in 3D and averages features over the 13 directions, so its GLCM and GLRLM features
correspond to IBSI ``_3D_avg`` and its GLSZM, NGTDM and GLDM (alpha 0) features to IBSI ``_3D``. pyradiomics'
``Kurtosis`` is not the excess kurtosis: IBSI ``stat_kurt`` = pyradiomics Kurtosis - 3 (see docs/radiomics.md).
"""

from __future__ import annotations

__all__ = ["IBSI_TO_PYRADIOMICS", "PYRADIOMICS_TO_IBSI", "pyradiomics_name"]

_SHAPE = {
    "morph_volume": "MeshVolume", "morph_vol_approx": "VoxelVolume", "morph_area_mesh": "SurfaceArea",
    "morph_av": "SurfaceVolumeRatio", "morph_sphericity": "Sphericity", "morph_diam": "Maximum3DDiameter",
    "morph_pca_maj_axis": "MajorAxisLength", "morph_pca_min_axis": "MinorAxisLength",
    "morph_pca_least_axis": "LeastAxisLength", "morph_pca_elongation": "Elongation", "morph_pca_flatness": "Flatness",
}  # fmt: skip
_FIRST = {
    "stat_mean": "Mean", "stat_var": "Variance", "stat_skew": "Skewness", "stat_kurt": "Kurtosis",
    "stat_median": "Median", "stat_min": "Minimum", "stat_p10": "10Percentile", "stat_p90": "90Percentile",
    "stat_max": "Maximum", "stat_iqr": "InterquartileRange", "stat_range": "Range",
    "stat_mad": "MeanAbsoluteDeviation", "stat_rmad": "RobustMeanAbsoluteDeviation", "stat_energy": "Energy",
    "stat_rms": "RootMeanSquared", "ih_entropy": "Entropy", "ih_uniformity": "Uniformity",
}  # fmt: skip
_GLCM = {
    "joint_max": "MaximumProbability", "joint_avg": "JointAverage", "joint_var": "SumSquares",
    "joint_entr": "JointEntropy", "diff_avg": "DifferenceAverage", "diff_var": "DifferenceVariance",
    "diff_entr": "DifferenceEntropy", "sum_avg": "SumAverage", "sum_entr": "SumEntropy", "energy": "JointEnergy",
    "contrast": "Contrast", "inv_diff": "Id", "inv_diff_norm": "Idn", "inv_diff_mom": "Idm",
    "inv_diff_mom_norm": "Idmn", "inv_var": "InverseVariance", "corr": "Correlation", "auto_corr": "Autocorrelation",
    "clust_tend": "ClusterTendency", "clust_shade": "ClusterShade", "clust_prom": "ClusterProminence",
    "info_corr1": "Imc1", "info_corr2": "Imc2",
}  # fmt: skip
_GLRLM = {
    "sre": "ShortRunEmphasis", "lre": "LongRunEmphasis", "lgre": "LowGrayLevelRunEmphasis",
    "hgre": "HighGrayLevelRunEmphasis", "srlge": "ShortRunLowGrayLevelEmphasis",
    "srhge": "ShortRunHighGrayLevelEmphasis", "lrlge": "LongRunLowGrayLevelEmphasis",
    "lrhge": "LongRunHighGrayLevelEmphasis", "glnu": "GrayLevelNonUniformity",
    "glnu_norm": "GrayLevelNonUniformityNormalized", "rlnu": "RunLengthNonUniformity",
    "rlnu_norm": "RunLengthNonUniformityNormalized", "r_perc": "RunPercentage", "gl_var": "GrayLevelVariance",
    "rl_var": "RunVariance", "rl_entr": "RunEntropy",
}  # fmt: skip
_GLSZM = {
    "sze": "SmallAreaEmphasis", "lze": "LargeAreaEmphasis", "lgze": "LowGrayLevelZoneEmphasis",
    "hgze": "HighGrayLevelZoneEmphasis", "szlge": "SmallAreaLowGrayLevelEmphasis",
    "szhge": "SmallAreaHighGrayLevelEmphasis", "lzlge": "LargeAreaLowGrayLevelEmphasis",
    "lzhge": "LargeAreaHighGrayLevelEmphasis", "glnu": "GrayLevelNonUniformity",
    "glnu_norm": "GrayLevelNonUniformityNormalized", "zsnu": "SizeZoneNonUniformity",
    "zsnu_norm": "SizeZoneNonUniformityNormalized", "z_perc": "ZonePercentage", "gl_var": "GrayLevelVariance",
    "zs_var": "ZoneVariance", "zs_entr": "ZoneEntropy",
}  # fmt: skip
_NGTDM = {"coarseness": "Coarseness", "contrast": "Contrast", "busyness": "Busyness", "complexity": "Complexity",
          "strength": "Strength"}  # fmt: skip
_GLDM = {
    "lde": "SmallDependenceEmphasis", "hde": "LargeDependenceEmphasis", "lgce": "LowGrayLevelEmphasis",
    "hgce": "HighGrayLevelEmphasis", "ldlge": "SmallDependenceLowGrayLevelEmphasis",
    "ldhge": "SmallDependenceHighGrayLevelEmphasis", "hdlge": "LargeDependenceLowGrayLevelEmphasis",
    "hdhge": "LargeDependenceHighGrayLevelEmphasis", "glnu": "GrayLevelNonUniformity",
    "dcnu": "DependenceNonUniformity", "dcnu_norm": "DependenceNonUniformityNormalized",
    "gl_var": "GrayLevelVariance", "dc_var": "DependenceVariance", "dc_entr": "DependenceEntropy",
}  # fmt: skip

#: IBSI tag -> pyradiomics "<class>_<Feature>" (without the image-type prefix such as "original_").
IBSI_TO_PYRADIOMICS: dict[str, str] = (
    {k: f"shape_{v}" for k, v in _SHAPE.items()}
    | {k: f"firstorder_{v}" for k, v in _FIRST.items()}
    | {f"cm_{k}_3D_avg": f"glcm_{v}" for k, v in _GLCM.items()}
    | {f"rlm_{k}_3D_avg": f"glrlm_{v}" for k, v in _GLRLM.items()}
    | {f"szm_{k}_3D": f"glszm_{v}" for k, v in _GLSZM.items()}
    | {f"ngt_{k}_3D": f"ngtdm_{v}" for k, v in _NGTDM.items()}
    | {f"ngl_{k}_3D": f"gldm_{v}" for k, v in _GLDM.items()}
)
PYRADIOMICS_TO_IBSI: dict[str, str] = {v: k for k, v in IBSI_TO_PYRADIOMICS.items()}


def pyradiomics_name(tag: str, image_type: str = "original") -> str:
    """The pyradiomics feature name for an IBSI tag, or "" where pyradiomics has no such feature."""
    name = IBSI_TO_PYRADIOMICS.get(tag)
    return f"{image_type}_{name}" if name else ""
