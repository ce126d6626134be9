"""The 3-D view: volume rendering of the CT at a reduced resolution.

On a software OpenGL (Mesa llvmpipe under Xvfb, remote desktops) the CPU ray caster
(vtkFixedPointVolumeRayCastMapper) is used on a copy of the volume with at most ``MAX_VOXELS_3D`` voxels; with a
hardware GPU vtkSmartVolumeMapper picks the GPU ray caster. ``RADPLAN_VOLUME_MAPPER=cpu|gpu`` overrides the choice.
The volume is rendered once when it is set and again only when the user turns the camera (left drag rotates,
right drag zooms, middle drag pans: VTK's trackball camera).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import NDArray
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import (
    vtkColorTransferFunction,
    vtkRenderer,
    vtkTextActor,
    vtkVolume,
    vtkVolumeProperty,
)
from vtkmodules.vtkRenderingVolume import vtkFixedPointVolumeRayCastMapper
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

from core.viewer.geometry import ImageGeometry
from ui.viewer.vtk_util import image_from_array, is_software_renderer, prepare_render_window

__all__ = ["MAX_VOXELS_3D", "VolumeView", "downsample_for_3d"]

MAX_VOXELS_3D = 2_000_000


def downsample_for_3d(
    array: NDArray[np.float32], spacing_mm: tuple[float, float, float], max_voxels: int = MAX_VOXELS_3D
) -> tuple[NDArray[np.int16], tuple[float, float, float]]:
    """Every n-th voxel in x and y (and z when needed) so at most ``max_voxels`` remain, as int16 HU; the new
    spacing (x, y, z)."""
    z, y, x = array.shape
    step_xy = 1
    while (x // step_xy) * (y // step_xy) * z > max_voxels and step_xy < 64:
        step_xy += 1
    step_z = 1
    while (x // step_xy) * (y // step_xy) * (z // step_z) > max_voxels and step_z < 64:
        step_z += 1
    small = np.clip(array[::step_z, ::step_xy, ::step_xy], -1024, 3071).astype(np.int16)
    sx, sy, sz = spacing_mm
    return np.ascontiguousarray(small), (sx * step_xy, sy * step_xy, sz * step_z)


class VolumeView(QVTKRenderWindowInteractor):  # type: ignore[misc]
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        window = self.GetRenderWindow()
        prepare_render_window(window)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.05, 0.05, 0.08)
        window.AddRenderer(self.renderer)
        self.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.volume: vtkVolume | None = None
        self.mapper_kind = ""
        self._image: Any = None
        self.label = vtkTextActor()
        self.label.GetTextProperty().SetFontSize(13)
        self.label.SetPosition(6, 6)
        self.renderer.AddViewProp(self.label)
        self.setMinimumSize(160, 160)

    def _choose_mapper(self) -> Any:
        choice = os.environ.get("RADPLAN_VOLUME_MAPPER", "").lower()
        if choice not in ("cpu", "gpu"):
            self.GetRenderWindow().Render()  # the GL context must exist to ask which renderer it is
            choice = "cpu" if is_software_renderer(self.GetRenderWindow()) else "gpu"
        if choice == "cpu":
            mapper = vtkFixedPointVolumeRayCastMapper()
            mapper.SetAutoAdjustSampleDistances(True)
            mapper.SetNumberOfThreads(max(1, os.cpu_count() or 1))
            self.mapper_kind = "cpu ray cast (vtkFixedPointVolumeRayCastMapper)"
        else:
            mapper = vtkSmartVolumeMapper()
            mapper.SetRequestedRenderModeToDefault()
            self.mapper_kind = "vtkSmartVolumeMapper (GPU)"
        return mapper

    def set_volume(self, array: NDArray[np.float32], geometry: ImageGeometry) -> None:
        small, spacing = downsample_for_3d(array, geometry.spacing_mm)
        self._image = image_from_array(small, spacing, geometry.origin_mm)
        mapper = self._choose_mapper()
        mapper.SetInputData(self._image)
        colours = vtkColorTransferFunction()
        opacity = vtkPiecewiseFunction()
        # CT: air clear, lung faint, soft tissue faint skin tone, bone white and opaque.
        for hu, rgb, a in (
            (-1024, (0, 0, 0), 0.0),
            (-500, (0.55, 0.25, 0.15), 0.0),
            (-100, (0.85, 0.55, 0.4), 0.02),
            (100, (0.9, 0.7, 0.6), 0.05),
            (250, (1.0, 0.95, 0.85), 0.35),
            (1000, (1.0, 1.0, 1.0), 0.8),
            (3071, (1.0, 1.0, 1.0), 0.9),
        ):
            colours.AddRGBPoint(hu, *rgb)
            opacity.AddPoint(hu, a)
        prop = vtkVolumeProperty()
        prop.SetColor(colours)
        prop.SetScalarOpacity(opacity)
        prop.SetInterpolationTypeToLinear()
        prop.ShadeOn()
        prop.SetAmbient(0.3)
        prop.SetDiffuse(0.7)
        prop.SetSpecular(0.2)
        if self.volume is not None:
            self.renderer.RemoveVolume(self.volume)
        self.volume = vtkVolume()
        self.volume.SetMapper(mapper)
        self.volume.SetProperty(prop)
        self.renderer.AddVolume(self.volume)
        camera = self.renderer.GetActiveCamera()
        camera.SetViewUp(0.0, 0.0, 1.0)
        camera.SetPosition(0.0, -1.0, 0.0)
        camera.SetFocalPoint(0.0, 0.0, 0.0)
        self.renderer.ResetCamera()
        camera.Zoom(1.3)
        z, y, x = small.shape
        self.label.SetInput(f"3D {x}x{y}x{z}")

    def clear(self) -> None:
        if self.volume is not None:
            self.renderer.RemoveVolume(self.volume)
        self.volume = None
        self._image = None
