"""DICOM handling: import into the store and writers for derived RT objects (headless; pydicom based)."""
