"""Small VTK helpers: numpy <-> vtkImageData without copies, render-window set-up, read-back of a rendered
window as an array."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import vtkmodules.vtkInteractionStyle
import vtkmodules.vtkRenderingFreeType
import vtkmodules.vtkRenderingOpenGL2
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (volume mappers' OpenGL back end)
from numpy.typing import NDArray
from PySide6.QtGui import QImage
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkWindowToImageFilter

__all__ = ["image_from_array", "is_software_renderer", "prepare_render_window", "qimage", "window_pixels"]


def image_from_array(array: NDArray[np.generic], spacing: Sequence[float], origin: Sequence[float]) -> vtkImageData:
    """A vtkImageData whose scalars *share memory* with ``array`` ([z, y, x] or [z, y, x, components],
    C-contiguous; the image keeps a reference); spacing and origin as (x, y, z)."""
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    z, y, x = array.shape[:3]
    components = int(array.shape[3]) if array.ndim == 4 else 1
    image = vtkImageData()
    image.SetDimensions(int(x), int(y), int(z))
    image.SetSpacing(*(float(v) for v in spacing))
    image.SetOrigin(*(float(v) for v in origin))
    flat = array.reshape(-1, components) if components > 1 else array.reshape(-1)
    scalars = numpy_to_vtk(flat, deep=False)
    scalars.SetName("scalars")
    image.GetPointData().SetScalars(scalars)
    image._numpy_owner = array  # type: ignore[attr-defined]  # keep the memory alive with the image
    return image


def prepare_render_window(window: vtkRenderWindow) -> None:
    """No multisampling: 8x MSAA (VTK's default) costs 2-3x the frame time under Mesa llvmpipe and buys nothing
    for images and thin lines."""
    window.SetMultiSamples(0)
    window.SetPointSmoothing(False)
    window.SetLineSmoothing(False)
    window.SetPolygonSmoothing(False)


def is_software_renderer(window: vtkRenderWindow) -> bool:
    """True when the window's OpenGL renderer is a CPU rasteriser (Mesa llvmpipe/softpipe, SwiftShader, ...)."""
    try:
        report = str(window.ReportCapabilities()).lower()
    except (AttributeError, RuntimeError):
        return True
    return any(name in report for name in ("llvmpipe", "softpipe", "software rasterizer", "swiftshader", "swr"))


def window_pixels(window: vtkRenderWindow) -> NDArray[np.uint8]:
    """The window's current image as an (height, width, 3) uint8 array, top row first (renders once)."""
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.ShouldRerenderOn()
    grab.Update()
    output = grab.GetOutput()
    width, height, _ = output.GetDimensions()
    pixels = vtk_to_numpy(output.GetPointData().GetScalars()).reshape(height, width, -1)[:, :, :3]
    return np.ascontiguousarray(pixels[::-1])


def qimage(pixels: NDArray[np.uint8]) -> QImage:
    """An (h, w, 3) uint8 RGB array as a QImage (copied)."""
    h, w, _ = pixels.shape
    data = np.ascontiguousarray(pixels)
    return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
