"""De-identify DICOM by the PS3.15 Basic Application Level Confidentiality Profile.

The actions come from :data:`medlearn.data.deid_profile.BASIC_PROFILE` (PS3.15 Annex E, Table E.1-1).
A combined code is resolved to the weakest action that still keeps any IOD valid: ``X/Z`` -> Z,
``X/D``/``Z/D``/``X/Z/D`` -> D, ``X/Z/U*`` -> keep the sequence and replace the UIDs inside it (so
references between images, e.g. of a DICOM-SEG, survive). A dummy (D) for a sequence is an empty
sequence: inventing items would be worse. The table applies at every nesting level.

Beyond the table (all safer, none weaker): every private attribute, curve (50xx) and overlay (60xx)
group is removed; every other person name (PN) is emptied; every UID that is not a DICOM-defined or
a class/transfer-syntax UID is replaced; with dates removed no date survives, with dates shifted every
date moves by one offset per run (PS3.15 "Retain Longitudinal Temporal Information with Modified
Dates" option) except the patient's birth date, which is emptied; the 128-byte preamble (which may
hold a TIFF header) is zeroed; and the file meta is rebuilt. A final sweep empties any text value
that still contains one of the input's identifying strings (:func:`phi_strings`), and
:func:`deidentify_folder` refuses to write a file whose bytes (outside native pixel data) still hold
one.

Pixel data is never changed. Images that usually carry identifiers in their pixels (BurnedInAnnotation
YES; ultrasound, secondary capture and OT/SC without BurnedInAnnotation NO) are refused unless
``keep_burned_in=True``.

Library choice: pydicom reads and writes; it has no profile. The ``deid`` package (PyPI) was
considered: its recipes are "best effort" rules (its default recipe removes every UID and every
attribute ending in "ID" rather than following Table E.1-1, and it does not remap UIDs consistently
by itself), so the table is kept here as data instead.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from medlearn.data.deid_profile import BASIC_PROFILE, GEOMETRY_KEYWORDS, MEDLEARN_EXTRA
from medlearn.errors import InputError
from medlearn.io import atomic_path, write_json

PROFILE_NAME = "DICOM PS3.15 Basic Application Confidentiality Profile"
MAPPING_FORMAT = "medlearn-deid-mapping/1"

# CID 7050 "De-identification Method" codes (scheme DCM)
CODE_BASIC = ("113100", "Basic Application Confidentiality Profile")
CODE_MODIFIED_DATES = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")

_SECONDARY_CAPTURE = {
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
}
_ULTRASOUND = {"1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1",  # US Image, US Multi-frame
               "1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.3"}  # their retired forms
_MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"

# Dates of the patient (not of the exam): never shifted, always as the table says.
_PATIENT_DATES = {"PatientBirthDate", "PatientBirthTime", "LastMenstrualDate",
                  "PatientBirthDateInAlternativeCalendar", "PatientDeathDateInAlternativeCalendar"}
# UIDs that name a kind of thing, not an instance: never replaced.
_KEEP_UIDS = {"TransferSyntaxUID", "ImplementationClassUID", "CodingSchemeUID", "MappingResourceUID",
              "ContextUID", "ReferencedTransferSyntaxUIDInFile", "SpecificCharacterSet"}
_TEXT_VRS = {"AE", "AS", "CS", "DS", "IS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}
_NUMERIC_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT", "US or SS", "OB or OW"}
_DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "DS": "0", "IS": "0", "AS": "000D",
          "US": 0, "SS": 0, "UL": 0, "SL": 0, "FL": 0.0, "FD": 0.0, "SV": 0, "UV": 0}
_DUMMY_TEXT = "ANONYMIZED"

# Attributes whose values identify the patient, the visit or the place (PN values anywhere count too).
_PHI_KEYWORDS = {
    "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "PatientAddress", "PatientTelephoneNumbers",
    "PatientTelecomInformation", "MedicalRecordLocator", "AccessionNumber", "StudyID", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "CurrentPatientLocation", "PatientInstitutionResidence", "AdmissionID", "ServiceEpisodeID",
    "RequestedProcedureID", "ScheduledProcedureStepID", "PerformedProcedureStepID",
    "FillerOrderNumberImagingServiceRequest", "PlacerOrderNumberImagingServiceRequest", "ResponsibleOrganization",
    "Occupation", "RegionOfResidence", "InsurancePlanIdentification", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "PersonAddress", "PersonTelephoneNumbers", "PersonTelecomInformation",
    "PerformedStationName", "ScheduledStationName", "IssuerOfAdmissionID", "IssuerOfServiceEpisodeID",
    "StudyIDIssuer", "OrderCallbackPhoneNumber", "PerformedLocation", "ScheduledProcedureStepLocation",
    "RequestedProcedureLocation", "SpecimenAccessionNumber",
}


def _values(value) -> list:
    """The values of a (possibly multi-valued) element; a PersonName or a string is one value."""
    from pydicom.multival import MultiValue

    if value is None:
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        return list(value)
    return [value]


def _is_class_uid(keyword: str, value: str) -> bool:
    return value.startswith("1.2.840.10008.") or keyword.endswith("ClassUID") or keyword in _KEEP_UIDS


def phi_strings(ds, *, uids: bool = False, min_length: int = 3) -> set[str]:
    """The identifying strings of ``ds`` (and its sequences, private attributes included): every person
    name and its components (patient, physicians, operators), patient IDs, birth and other dates,
    accession and request numbers, institution, department and station names, device serial numbers.
    With ``uids=True`` also the instance UIDs (study, series, SOP instance, frame of reference, ...).

    Strings shorter than ``min_length`` (a middle initial, a sex code) are left out: they would match
    by chance anywhere. Meant for searching outputs (bytes, logs, run folders) for leaks.
    """
    out: set[str] = set()

    def add(value) -> None:
        text = str(value).strip()
        if len(text) >= min_length:
            out.add(text)

    def walk(d) -> None:
        for elem in d:
            vr, kw = elem.VR, elem.keyword
            if vr == "SQ":
                for item in elem.value or []:
                    walk(item)
            elif vr == "PN":
                for name in _values(elem.value):
                    add(name)
                    for group in getattr(name, "components", ()):
                        add(group)
                        for part in str(group).split("^"):
                            add(part)
            elif vr == "DA":
                for v in _values(elem.value):
                    add(v)
            elif vr == "DT":
                for v in _values(elem.value):
                    if len(str(v)) >= 8:
                        add(str(v)[:8])
            elif vr == "UI":
                if uids:
                    for v in _values(elem.value):
                        if not _is_class_uid(kw, str(v)):
                            add(v)
            elif kw in _PHI_KEYWORDS and vr in _TEXT_VRS:
                for v in _values(elem.value):
                    add(v)

    walk(ds)
    if getattr(ds, "file_meta", None) is not None:
        walk(ds.file_meta)
    return out


def random_uid(rng: np.random.Generator | None = None) -> str:
    """A new UID under the 2.25 root (a UUID as integer); from ``rng`` when given (reproducible)."""
    if rng is None:
        return f"2.25.{uuid.uuid4().int}"
    return f"2.25.{uuid.UUID(bytes=rng.bytes(16), version=4).int}"


def _uid_avoiding(new_uid: Callable[[], str], strings: set[str]) -> Callable[[], str]:
    """``new_uid`` drawn again while the UID holds one of ``strings``: a random UID's digits can spell a
    short numeric identifier (a 5-digit patient number, ~0.3% of files), which the leak checks then find."""
    def draw() -> str:
        for _ in range(1000):
            uid = new_uid()
            if not any(s in uid for s in strings):
                return uid
        raise ValueError("no new UID avoids the file's identifying strings")
    return draw


@dataclass
class _Context:
    uid_map: dict[str, str]
    shift: int | None
    keep_geometry: bool
    new_uid: Callable[[], str]


def _map_uid(value: str, ctx: _Context) -> str:
    value = str(value).strip()
    if not value:
        return value
    if value not in ctx.uid_map:
        ctx.uid_map[value] = ctx.new_uid()
    return ctx.uid_map[value]


def _shift_date(value: str, days: int) -> str:
    text = str(value).strip()
    if len(text) == 10 and text[4] == "." and text[7] == ".":  # ACR-NEMA YYYY.MM.DD
        text = text.replace(".", "")
    try:
        day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])) if len(text) == 8 and text.isdigit() else None
    except ValueError:
        day = None
    return (day + dt.timedelta(days=days)).strftime("%Y%m%d") if day is not None else ""


def _shift_datetime(value: str, days: int) -> str:
    text = str(value).strip()
    date = _shift_date(text[:8], days) if len(text) >= 8 else ""
    return date + text[8:] if date else ""  # a year-only DT cannot be shifted to the day: emptied


def _set(elem, values: list) -> None:
    elem.value = values[0] if len(values) == 1 else values


def _empty(elem) -> None:
    from pydicom.sequence import Sequence

    if elem.VR == "SQ":
        elem.value = Sequence()
    elif elem.VR in _NUMERIC_VRS or elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        elem.value = None
    else:
        elem.value = ""


def _dummy(elem) -> None:
    if elem.value in (None, "", b"") or (elem.VR != "SQ" and not _values(elem.value)):
        return  # already empty: nothing to hide, and a dummy would invent a value
    if elem.VR == "SQ" or elem.VR not in _DUMMY and elem.VR not in _TEXT_VRS:
        _empty(elem)
    else:
        elem.value = _DUMMY.get(elem.VR, _DUMMY_TEXT)


def _resolve(code: str) -> str:
    """One action for a Table E.1-1 code: the weakest that keeps any IOD valid."""
    if code == "X/Z/U*":
        return "U*"
    if code == "X/Z":
        return "Z"
    if code in ("X/D", "Z/D", "X/Z/D"):
        return "D"
    return code


def _removed_group(tag) -> bool:
    group = tag.group
    return (0x5000 <= group <= 0x50FF) or (0x6000 <= group <= 0x60FF and group % 2 == 0)  # curves, overlays


def _clean(ds, ctx: _Context) -> None:
    for tag in list(ds.keys()):
        if tag.is_private or _removed_group(tag):
            del ds[tag]  # before conversion: private values may not even parse
            continue
        elem = ds[tag]
        kw, vr = elem.keyword, elem.VR
        if kw in GEOMETRY_KEYWORDS:
            if not ctx.keep_geometry:
                del ds[tag]
                continue
            if kw != "FrameOfReferenceUID":  # kept as is; the frame of reference UID is remapped below
                if vr == "SQ":
                    for item in elem.value or []:
                        _clean(item, ctx)
                continue
        code = BASIC_PROFILE.get(kw) or MEDLEARN_EXTRA.get(kw)
        if vr in ("DA", "DT") and ctx.shift is not None and kw not in _PATIENT_DATES:
            shift = _shift_date if vr == "DA" else _shift_datetime
            _set(elem, [shift(v, ctx.shift) for v in _values(elem.value)])
            continue
        if vr == "TM" and ctx.shift is not None and kw not in _PATIENT_DATES:
            continue  # times stay with shifted dates: the offset is whole days
        if code is None:
            if vr == "SQ":
                for item in elem.value or []:
                    _clean(item, ctx)
            elif vr == "UI":
                if not all(_is_class_uid(kw, str(v)) for v in _values(elem.value)):
                    _set(elem, [v if _is_class_uid(kw, str(v)) else _map_uid(v, ctx) for v in _values(elem.value)])
            elif vr == "PN" or vr in ("DA", "DT"):
                _empty(elem)  # names not in the table; dates when they are not shifted
            continue
        action = _resolve(code)
        if action == "X":
            del ds[tag]
        elif vr == "SQ":
            if action == "U*":
                for item in elem.value or []:
                    _clean(item, ctx)
            else:
                _empty(elem)
        elif action == "U":
            if elem.value:
                _set(elem, [_map_uid(v, ctx) for v in _values(elem.value)])
        elif action == "Z":
            _empty(elem)
        else:
            _dummy(elem)


def _sweep(ds, phi: set[str]) -> None:
    """Empty any remaining text value that contains an identifying string of the input."""
    if not phi:
        return
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or []:
                _sweep(item, phi)
        elif elem.VR in _TEXT_VRS and elem.value not in (None, ""):
            text = "\\".join(str(v) for v in _values(elem.value))
            if any(s in text for s in phi):
                _empty(elem)


def _code_item(code: tuple[str, str]):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code[0], "DCM", code[1]
    return item


def deidentify_dataset(ds, *, uid_map: dict[str, str], date_shift_days: int | None, keep_geometry: bool = True,
                       patient_map: dict[str, str] | None = None, new_uid: Callable[[], str] | None = None,
                       notes: Iterable[str] = (), avoid: Iterable[str] = ()):
    """A de-identified copy of the pydicom dataset ``ds`` (``ds`` itself is left as it was).

    ``uid_map`` (original -> new UID) is read and extended: the same input UID gets the same new UID
    across every call that shares the map (persist it to keep a study consistent across runs).
    ``date_shift_days``: an int shifts every exam date by that many days (the same for the whole run);
    None removes/empties dates as the Basic Profile says. ``keep_geometry`` keeps image position,
    orientation, slice location and the (remapped) frame of reference; False removes them.
    ``patient_map`` (original PatientID -> pseudonym), when given, puts a pseudonym in PatientID and
    PatientName instead of emptying them. ``notes`` are added to DeidentificationMethod. No new UID holds an
    identifying string of ``ds`` or of ``avoid`` (strings the caller's own leak check looks for).
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        ExplicitVRBigEndian,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    )

    phi = phi_strings(ds)
    original_id = str(ds.get("PatientID", "") or "").strip()
    old_meta = getattr(ds, "file_meta", None)
    transfer_syntax = old_meta.get("TransferSyntaxUID") if old_meta is not None else None
    if transfer_syntax is None:
        implicit, little = getattr(ds, "original_encoding", (False, True))
        transfer_syntax = (ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little is not False
                           else ExplicitVRBigEndian)
    out = copy.deepcopy(ds)
    ctx = _Context(uid_map, date_shift_days, keep_geometry, _uid_avoiding(new_uid or random_uid, phi | set(avoid)))
    _clean(out, ctx)
    _sweep(out, phi)
    if patient_map is not None:
        pseudonym = patient_map.get(original_id)
        if pseudonym is None:
            used = set(patient_map.values())
            pseudonym = next(p for p in (f"ANON-{ctx.new_uid()[-10:]}" for _ in range(1000)) if p not in used)
            patient_map[original_id] = pseudonym
        out.PatientID = pseudonym
        out.PatientName = pseudonym
    else:
        out.PatientID = ""
        out.PatientName = ""
    out.PatientIdentityRemoved = "YES"
    method = [PROFILE_NAME, "medlearn.data.deid", "private attributes removed",
              "dates shifted by a per-run offset" if date_shift_days is not None else "dates removed"]
    if keep_geometry:
        method.append("patient geometry retained (positions, orientation)")
    method += [str(n)[:64] for n in notes]
    out.DeidentificationMethod = method
    codes = [CODE_BASIC] + ([CODE_MODIFIED_DATES] if date_shift_days is not None else [])
    out.DeidentificationMethodCodeSequence = Sequence([_code_item(c) for c in codes])
    out.LongitudinalTemporalInformationModified = "MODIFIED" if date_shift_days is not None else "REMOVED"
    if hasattr(out, "preamble"):
        out.preamble = b"\x00" * 128  # a preamble may hold anything (e.g. a TIFF header with text)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = out.get("SOPClassUID", old_meta.get("MediaStorageSOPClassUID", "")
                                           if old_meta is not None else "")
    meta.MediaStorageSOPInstanceUID = out.get("SOPInstanceUID", "")
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out.file_meta = meta
    return out


def burned_in_reason(ds) -> str | None:
    """Why ``ds`` probably shows identifiers in its pixels, or None."""
    flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES: identifiers may be drawn into the pixels"
    if flag == "NO":
        return None
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop = str(ds.get("SOPClassUID", "") or "")
    if modality == "US" or sop in _ULTRASOUND:
        return "ultrasound without BurnedInAnnotation=NO: scanners usually draw patient text into the pixels"
    if sop in _SECONDARY_CAPTURE:
        return "secondary capture SOP class without BurnedInAnnotation=NO: screen captures usually show patient text"
    if modality in ("OT", "SC"):
        return f"modality {modality} without BurnedInAnnotation=NO: such images usually show patient text"
    return None


@dataclass
class Report:
    """What :func:`deidentify_folder` did. ``refused`` pairs an input file with the reason."""

    written: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # not DICOM
    burned_in_kept: list[Path] = field(default_factory=list)  # written with keep_burned_in=True
    dates: str = "shifted"
    n_uids: int = 0
    n_patients: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {"written": len(self.written), "refused": len(self.refused), "skipped": len(self.skipped),
                "burned_in_kept": len(self.burned_in_kept), "uids": self.n_uids, "patients": self.n_patients}

    def summary(self) -> str:
        c = self.counts
        return (f"{c['written']} written, {c['refused']} refused, {c['skipped']} skipped (not DICOM); "
                f"dates {self.dates}; {c['uids']} UIDs and {c['patients']} patient IDs replaced")


def _within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _load_mapping(path: Path) -> dict:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read mapping file ({type(exc).__name__})", "pass a mapping written by "
                         "deidentify_folder, or a new path") from exc
    if not isinstance(state, dict) or state.get("format") != MAPPING_FORMAT:
        raise InputError(path, "not a medlearn de-identification mapping", "pass a new path to start a mapping")
    return state


def _encode(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _leak(data: bytes, ds, phi: set[str]) -> str | None:
    """Where an identifying string still sits in the encoded file, or None. Native pixel data is not
    searched (grey values match short strings by chance); compressed pixel data is, for strings of 6
    characters or more (a JPEG comment or EXIF block can carry a name)."""
    pixels = ds.get("PixelData") if "PixelData" in ds else None
    encapsulated = bool(getattr(ds.file_meta.get("TransferSyntaxUID"), "is_compressed", False))
    header = data.replace(pixels, b"", 1) if isinstance(pixels, bytes) and pixels else data
    for s in phi:
        for enc in ("utf-8", "latin-1"):
            try:
                needle = s.encode(enc)
            except UnicodeEncodeError:
                continue
            if needle in header:
                return "in the header"
            if encapsulated and isinstance(pixels, bytes) and len(needle) >= 6 and needle in pixels:
                return "inside the compressed pixel data (a JPEG comment?)"
    return None


def deidentify_folder(in_path: str | Path, out_dir: str | Path, *, keep_burned_in: bool = False,
                      mapping_file: str | Path | None = None,
                      date_shift_days: int | Literal["remove"] | None = None,
                      seed: int | None = None) -> Report:
    """De-identify every DICOM file under ``in_path`` (a file or a folder, searched recursively) into
    the new or empty folder ``out_dir`` as ``00001.dcm``, ``00002.dcm``, ... (input names may hold
    names or IDs, so they are not reused). Inputs are never written to; each output is written
    atomically.

    ``date_shift_days``: None draws one offset for the run (-3650..-365 days) from ``seed``; an int
    is that offset; ``"remove"`` empties/removes dates instead. ``seed`` makes UIDs, pseudonyms and
    the offset reproducible (leave it None for real data: a known seed lets anyone redo the offset).
    ``mapping_file``: only when given, a JSON file (outside ``out_dir``) with original -> new UIDs,
    PatientID -> pseudonym and the date offset; an existing one is read first and extended, so later
    runs on more files of the same patients stay consistent. Nothing else holds the originals.
    """
    import pydicom

    from medlearn.data.dicom import is_dicom_file, pixel_data_shortfall, sop_class_uid

    in_path, out_dir = Path(in_path), Path(out_dir)
    if not in_path.exists():
        raise InputError(in_path, "file not found", "check the path")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(out_dir, "output folder exists and is not empty",
                         "choose a new folder: de-identified files are never written over others")
    if mapping_file is not None:
        mapping_file = Path(mapping_file)
        if _within(mapping_file, out_dir) or (in_path.is_dir() and _within(mapping_file, in_path)):
            raise InputError(mapping_file, "mapping file inside the input or output folder",
                             "it holds the original identifiers: keep it apart from the images")
    rng = np.random.default_rng(seed)
    state = {"format": MAPPING_FORMAT, "uids": {}, "patients": {}, "date_shift_days": None, "dates": None}
    if mapping_file is not None and mapping_file.exists():
        state.update(_load_mapping(mapping_file))
    shift = _resolve_shift(date_shift_days, state, mapping_file, rng)
    state["date_shift_days"], state["dates"] = shift, ("shifted" if shift is not None else "removed")
    report = Report(dates=state["dates"])
    # every file, DICOMDIR and hidden ones included, so that the report accounts for all of them
    files = [in_path] if in_path.is_file() else sorted(
        f for f in in_path.rglob("*") if f.is_file() and not _within(f, out_dir))
    index = 0
    for f in files:
        if not is_dicom_file(f):
            report.skipped.append(f)
            continue
        try:
            ds = pydicom.dcmread(f, force=True)
            sop = sop_class_uid(ds)
        except Exception as exc:
            report.refused.append((f, f"cannot read DICOM ({type(exc).__name__}): truncated or corrupt?"))
            continue
        if sop == _MEDIA_DIRECTORY:
            report.refused.append((f, "DICOMDIR (media directory of patient records): regenerate it from the output"))
            continue
        short = pixel_data_shortfall(ds)
        if short is not None:
            report.refused.append((f, f"pixel data truncated ({short[0]} of {short[1]} bytes): file cut short?"))
            continue
        if "EncapsulatedDocument" in ds:
            report.refused.append((f, "encapsulated document (PDF/CDA): its content cannot be de-identified here"))
            continue
        reason = burned_in_reason(ds)
        if reason and not keep_burned_in:
            report.refused.append((f, f"{reason} -- pass keep_burned_in=True to write it anyway"))
            continue
        notes = ["burned-in annotation NOT removed"] if reason else []
        try:
            phi = phi_strings(ds)  # reads every element: a truncated header fails here
            out = deidentify_dataset(ds, uid_map=state["uids"], date_shift_days=shift, keep_geometry=True,
                                     patient_map=state["patients"], new_uid=lambda: random_uid(rng), notes=notes)
            data = _encode(out)
        except Exception as exc:  # a truncated header, or a malformed attribute pydicom cannot write back
            # the exception text may quote a value: only its type goes into the report
            report.refused.append((f, f"cannot de-identify ({type(exc).__name__}): a malformed attribute?"))
            continue
        where = _leak(data, out, phi)
        if where:
            report.refused.append((f, f"an identifying string survived de-identification {where}"))
            continue
        index += 1
        target = out_dir / f"{index:05d}.dcm"
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        report.written.append(target)
        if reason:
            report.burned_in_kept.append(target)
    report.n_uids, report.n_patients = len(state["uids"]), len(state["patients"])
    if mapping_file is not None:
        write_json(mapping_file, state)
    return report


def _resolve_shift(date_shift_days, state: dict, mapping_file: Path | None, rng: np.random.Generator) -> int | None:
    stored = state.get("date_shift_days")
    stored_known = state.get("dates") is not None
    if date_shift_days == "remove":
        if stored_known and stored is not None:
            raise InputError(mapping_file, "the mapping shifted dates, this run would remove them",
                             "use the same date handling as the mapping's earlier runs, or a new mapping")
        return None
    if isinstance(date_shift_days, (int, np.integer)) and not isinstance(date_shift_days, bool):
        if stored_known and stored != int(date_shift_days):
            raise InputError(mapping_file, "date_shift_days differs from the mapping's offset",
                             "leave date_shift_days unset to reuse the mapping's offset, or use a new mapping")
        return int(date_shift_days)
    if date_shift_days is not None:
        raise InputError(None, f"date_shift_days must be an int, 'remove' or None, not {date_shift_days!r}")
    if stored_known:
        return None if stored is None else int(stored)
    return -int(rng.integers(365, 3651))
