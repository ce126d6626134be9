"""The store's index attributes of a Part 10 byte string, read straight from its bytes (the fast path).

Indexing a received instance with pydicom (reading the header into a Dataset and converting 19 values) cost about
0.8 ms per instance, a fifth of the CPU time of a whole PACS retrieve, all of it holding the GIL that the network
threads need. The index only needs 19 short values in groups 0008-0020, which sit at the start of the data set.
`read_index` walks the top-level elements up to group 0020 with `struct` and decodes those values; it answers only
when it is sure to give exactly what pydicom gives (tests/core/dicom/test_header_index.py compares the two):

* little-endian, uncompressed-header transfer syntaxes (explicit or implicit VR; not deflated, not big endian);
* character sets ISO_IR 6 (default), ISO_IR 100 (Latin-1) and ISO_IR 192 (UTF-8); no code extensions;
* single values without leading blanks, person names without ideographic or phonetic groups;
* no element of undefined length before the end of group 0020.

Anything else returns None and the caller reads the data set with pydicom, as before.
"""

from __future__ import annotations

import struct

__all__ = ["INDEX_TAGS", "read_index"]

#: (group, element) -> keyword of the attributes the store indexes (core.dicom.importer.ParsedInstance).
INDEX_TAGS: dict[int, str] = {
    0x00080005: "SpecificCharacterSet",
    0x00080016: "SOPClassUID",
    0x00080018: "SOPInstanceUID",
    0x00080020: "StudyDate",
    0x00080030: "StudyTime",
    0x00080050: "AccessionNumber",
    0x00080060: "Modality",
    0x00081030: "StudyDescription",
    0x0008103E: "SeriesDescription",
    0x00100010: "PatientName",
    0x00100020: "PatientID",
    0x00100021: "IssuerOfPatientID",
    0x00100030: "PatientBirthDate",
    0x00100040: "PatientSex",
    0x0020000D: "StudyInstanceUID",
    0x0020000E: "SeriesInstanceUID",
    0x00200011: "SeriesNumber",
    0x00200013: "InstanceNumber",
    0x00200052: "FrameOfReferenceUID",
}
_LAST_TAG = 0x00200052
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
_OTHER_HEADER_SYNTAXES = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2")  # deflated, big endian: pydicom
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"))
_ENCODINGS = {"": "iso8859", "ISO_IR 6": "iso8859", "ISO_IR 100": "latin_1", "ISO_IR 192": "UTF8"}
_UNDEFINED = 0xFFFFFFFF
_TAG_VR16 = struct.Struct("<HH2sH")
_TAG_LEN32 = struct.Struct("<HHL")
_LEN32 = struct.Struct("<L")


def _transfer_syntax(data: bytes) -> tuple[str, int] | None:
    """(Transfer Syntax UID, offset of the data set) from the file meta group (always explicit VR LE)."""
    offset, syntax = 132, None
    while offset + 8 <= len(data):
        group, element, vr, length = _TAG_VR16.unpack_from(data, offset)
        if group != 0x0002:
            break
        header = 8
        if vr in _LONG_VRS:
            (length,) = _LEN32.unpack_from(data, offset + 8)
            header = 12
        if length == _UNDEFINED:
            return None
        value = data[offset + header : offset + header + length]
        if element == 0x0010:
            syntax = value.rstrip(b"\x00 ").decode("ascii", "replace")
        offset += header + length
    return (syntax, offset) if syntax else None


def _raw_values(data: bytes, offset: int, explicit: bool) -> dict[int, tuple[bytes, bytes]] | None:
    """tag -> (VR or b"", value bytes) of the index attributes; None on anything read_index does not handle."""
    found: dict[int, tuple[bytes, bytes]] = {}
    end = len(data)
    while offset + 8 <= end:
        if explicit:
            group, element, vr, length = _TAG_VR16.unpack_from(data, offset)
            header = 8
            if vr in _LONG_VRS:
                if offset + 12 > end:
                    return None
                (length,) = _LEN32.unpack_from(data, offset + 8)
                header = 12
            elif not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
                return None  # not a VR: the data set is not explicit VR as its syntax says (pydicom explains)
        else:
            group, element, length = _TAG_LEN32.unpack_from(data, offset)
            vr, header = b"", 8
        tag = group << 16 | element
        if tag > _LAST_TAG:
            return found
        if length == _UNDEFINED or offset + header + length > end:
            return None
        if tag in INDEX_TAGS:
            found[tag] = (vr, data[offset + header : offset + header + length])
        offset += header + length
    return found


def read_index(data: bytes) -> tuple[str, dict[str, str]] | None:
    """(Transfer Syntax UID, keyword -> value) of the index attributes present in the Part 10 bytes ``data`` (which
    start with the 128-byte preamble and "DICM"), with the values pydicom's ``str(ds.Keyword)`` gives; None when
    the bytes need pydicom (see the module docstring)."""
    meta = _transfer_syntax(data)
    if meta is None:
        return None
    syntax, offset = meta
    if syntax in _OTHER_HEADER_SYNTAXES or not syntax.startswith("1.2.840.10008.1.2"):
        return None
    raw = _raw_values(data, offset, explicit=syntax != _IMPLICIT_LE)
    if raw is None:
        return None
    charset = raw.pop(0x00080005, (b"", b""))[1].rstrip(b"\x00 ").decode("ascii", "replace").strip()
    encoding = _ENCODINGS.get(charset)
    if encoding is None:
        return None
    values: dict[str, str] = {}
    for tag, (_vr, value) in raw.items():
        try:
            text = value.decode(encoding)
        except UnicodeDecodeError:
            return None
        text = text.rstrip("\x00 ")
        if "\\" in text or text[:1].isspace() or (tag == 0x00100010 and "=" in text):
            return None  # several values, leading blanks, name component groups: pydicom's business
        values[INDEX_TAGS[tag]] = text
    return syntax, values
