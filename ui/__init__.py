"""All Qt code (PySide6, VTK, pyqtgraph). Talks to engines only through core interfaces."""
