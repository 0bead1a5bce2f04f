"""What an image's own bytes say about where it came from: C2PA, IPTC digital source type, generator
parameters, EXIF camera and software. Django-free; read from the original upload, never a re-encoded copy.

Each :class:`Finding` is one sentence a person can read, with its strength:

- ``declares_ai``: the file says it was generated (a C2PA action, an IPTC digital source type,
  generator parameters in PNG text chunks); ``signed`` where a C2PA signature backs the claim;
- ``declares_editing``: the file says it was edited (editing software, a C2PA edit action);
- ``camera``: the file claims a camera capture (weak: EXIF is easy to write);
- ``invalid_signature``: a C2PA manifest whose signature or hashes no longer match: the file was
  changed after it was signed;
- ``none``: nothing was found. Most shared images have their metadata stripped, so this proves nothing.

Metadata is attacker-controlled: every value is cut to a few hundred characters, XMP is parsed by
Pillow with defusedxml (entity bombs refused) and only where it is small, and nothing read here is
ever executed or followed (no remote manifests, no URLs fetched).
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import asdict, dataclass, field

from PIL import ExifTags, Image

log = logging.getLogger(__name__)

DECLARES_AI, DECLARES_EDITING, CAMERA, INVALID_SIGNATURE, NONE = (
    "declares_ai",
    "declares_editing",
    "camera",
    "invalid_signature",
    "none",
)
STRENGTH_WORDS = {
    DECLARES_AI: "declares AI generation",
    DECLARES_EDITING: "declares editing",
    CAMERA: "camera capture claimed (weak: easy to forge)",
    INVALID_SIGNATURE: "signature invalid: changed after signing",
    NONE: "nothing found (proves nothing)",
}
MAX_TEXT = 200  # characters kept of any value read from the file
MAX_XMP_BYTES = 256 * 1024  # larger XMP packets are not parsed
MAX_C2PA_JSON = 2 * 1024 * 1024  # a manifest store larger than this, once read, is reported, not parsed
MAX_NODES = 5000  # XMP and manifest nodes walked at most (deeply nested or huge metadata)

# IPTC NewsCodes digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/): what each declares.
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SOURCE_TYPES = {
    "trainedAlgorithmicMedia": (DECLARES_AI, "made by a generative AI model"),
    "compositeWithTrainedAlgorithmicMedia": (DECLARES_AI, "a composite that includes AI-generated parts"),
    "algorithmicMedia": (DECLARES_AI, "made by an algorithm, without a camera"),
    "compositeSynthetic": (DECLARES_AI, "a composite of synthetic elements"),
    "algorithmicallyEnhanced": (DECLARES_EDITING, "enhanced by an algorithm"),
    "composite": (DECLARES_EDITING, "a composite of several images"),
    "compositeCapture": (DECLARES_EDITING, "a composite of several captures"),
    "minorHumanEdits": (DECLARES_EDITING, "a capture with minor human edits"),
    "digitalCapture": (CAMERA, "a digital camera capture"),
    "computationalCapture": (CAMERA, "a capture processed by the camera's software"),
    "negativeFilm": (CAMERA, "a scan of a film negative"),
    "positiveFilm": (CAMERA, "a scan of a slide"),
    "print": (CAMERA, "a scan of a print"),
}
# C2PA actions that say the image was changed.
EDIT_ACTIONS = {
    "c2pa.edited",
    "c2pa.color_adjustments",
    "c2pa.cropped",
    "c2pa.filtered",
    "c2pa.resized",
    "c2pa.drawing",
    "c2pa.converted",
    "c2pa.transcoded",
}
EDITORS = re.compile(
    r"photoshop|lightroom|gimp|affinity|pixelmator|snapseed|facetune|canva|picsart|capture one|darktable|"
    r"luminar|paint\.net|krita|meitu|photoroom",
    re.IGNORECASE,
)
# PNG text chunks that generators write: key -> who writes it.
GENERATOR_CHUNKS = {
    "parameters": "Stable Diffusion (AUTOMATIC1111 or Forge)",
    "prompt": "ComfyUI",
    "workflow": "ComfyUI",
    "invokeai_metadata": "InvokeAI",
    "sd-metadata": "InvokeAI",
    "Dream": "Stable Diffusion (dream.py)",
}


@dataclass(frozen=True)
class Finding:
    source: str  # c2pa, xmp, png, exif
    strength: str  # DECLARES_AI, DECLARES_EDITING, CAMERA, INVALID_SIGNATURE, NONE
    text: str  # one sentence for people
    signed: bool = False  # a valid C2PA signature (intact, by the certificate it names) backs it
    signer: str = ""  # the C2PA signer's name, as its certificate gives it
    trusted: bool = False  # the signer's certificate leads to an anchor of the operator's trust list
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _cut(value) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def read(data: bytes, mime: str, trust_anchors: str = "") -> list[Finding]:
    """Every finding in the file, strongest first; one ``none`` finding where there is nothing.

    ``trust_anchors``: PEM certificates the operator trusts (``DETECTOR_C2PA_TRUST_ANCHORS``); a C2PA signer whose
    chain leads to one is marked ``trusted``. None by default: every signer is named, none judged.
    """
    findings: list[Finding] = []
    for reader in (_c2pa, _embedded):
        try:
            findings += reader(data, mime, trust_anchors) if reader is _c2pa else reader(data, mime)
        except Exception:  # a reader's own failure on hostile bytes: reported as unreadable, never raised
            log.warning("provenance: %s could not read the file", reader.__name__, exc_info=True)
            findings.append(Finding(reader.__name__.strip("_"), NONE, "Part of the file's metadata could not be read."))
    return _strongest_first(
        findings,
        "No provenance in the file: no C2PA manifest, no generator or camera metadata. Most images shared online "
        "have it stripped, so its absence proves nothing either way.",
    )


def _strongest_first(findings: list[Finding], nothing: str) -> list[Finding]:
    """The findings strongest first, signed before unsigned; ``nothing`` said where none says anything."""
    if not any(f.strength != NONE for f in findings):
        findings = [*findings, Finding("file", NONE, nothing)]
    order = [INVALID_SIGNATURE, DECLARES_AI, DECLARES_EDITING, CAMERA, NONE]
    return sorted(findings, key=lambda f: (order.index(f.strength), not f.signed))


def _c2pa(data, mime: str, trust_anchors: str = "") -> list[Finding]:
    """``data``: the bytes, or a seekable binary file (a video is read where the manifest is, never whole)."""
    import c2pa

    context = None
    if trust_anchors:
        context = c2pa.Context.from_dict({"trust": {"trust_anchors": trust_anchors}, "verify": {"verify_trust": True}})
    try:
        stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        reader = c2pa.Reader(mime, stream, context=context)
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "ManifestNotFound" in str(exc):
            return []
        return [Finding("c2pa", NONE, "The file holds C2PA data that could not be read.", details={"error": _cut(exc)})]
    with reader:
        raw = reader.json()
        state = reader.get_validation_state()
    if len(raw) > MAX_C2PA_JSON:
        return [Finding("c2pa", NONE, "The file's C2PA manifest is too large to read.")]
    store = json.loads(raw)
    manifest = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    problems = [
        s.get("code", "")
        for s in store.get("validation_status", [])
        if s.get("code") and s.get("code") != "signingCredential.untrusted"  # no trust list is configured
    ]
    signature = manifest.get("signature_info") or {}
    trusted = state == "Trusted"
    signer = _cut(signature.get("issuer") or signature.get("common_name") or "an unnamed signer")
    by = f"{signer} (on this platform's trust list)" if trusted else signer
    generator = _generator_name(manifest)
    details = {
        "signer": signer,
        "certificate": _cut(signature.get("common_name", "")),
        "claim_generator": generator,
        "validation_state": state,
        "problems": problems[:10],
        "ingredients": len(manifest.get("ingredients", [])),
    }
    if state == "Invalid" or problems:
        return [
            Finding(
                "c2pa",
                INVALID_SIGNATURE,
                f"A C2PA manifest signed by {signer} no longer matches the file: it was changed after signing "
                f"({', '.join(problems[:3]) or 'invalid'}). What it claims cannot be trusted.",
                signer=signer,
                details=details,
            )
        ]
    out = []
    for action in _actions(manifest):
        kind = action.get("digitalSourceType", "").rsplit("/", 1)[-1]
        strength, words = SOURCE_TYPES.get(kind, (None, ""))
        if strength == DECLARES_AI:
            out.append(
                Finding(
                    "c2pa",
                    DECLARES_AI,
                    f"Signed by {by}: {words}" + (f", with {generator}" if generator else "") + ".",
                    signed=True,
                    signer=signer,
                    trusted=trusted,
                    details={**details, "action": _cut(action.get("action", "")), "digital_source_type": kind},
                )
            )
        elif action.get("action") in EDIT_ACTIONS:
            out.append(
                Finding(
                    "c2pa",
                    DECLARES_EDITING,
                    f"Signed by {by}: edited ({_cut(action['action']).removeprefix('c2pa.')})"
                    + (f" with {generator}" if generator else "")
                    + ".",
                    signed=True,
                    signer=signer,
                    details=details,
                )
            )
        elif strength == CAMERA:
            out.append(
                Finding(
                    "c2pa",
                    CAMERA,
                    f"Signed by {by}: {words}.",
                    signed=True,
                    signer=signer,
                    trusted=trusted,
                    details=details,
                )
            )
    if not out:
        out.append(
            Finding(
                "c2pa",
                NONE,
                f"A C2PA manifest signed by {signer}" + (f" ({generator})" if generator else "") + " says nothing "
                "about how the image was made.",
                signed=True,
                signer=signer,
                details=details,
            )
        )
    return list({f.text: f for f in out}.values())


def _generator_name(manifest: dict) -> str:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info, list) and isinstance(info[0], dict):
        return _cut(" ".join(str(info[0].get(k, "")) for k in ("name", "version")).strip())
    return _cut(manifest.get("claim_generator", ""))


def _actions(manifest: dict) -> list[dict]:
    actions = []
    for assertion in manifest.get("assertions", [])[:MAX_NODES]:
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions += [a for a in (assertion.get("data") or {}).get("actions", [])[:MAX_NODES] if isinstance(a, dict)]
    return actions


def _embedded(data: bytes, mime: str) -> list[Finding]:
    """XMP, PNG text chunks and EXIF, through Pillow."""
    out: list[Finding] = []
    with Image.open(io.BytesIO(data)) as im:
        out += _xmp(im)
        out += _png_chunks(im)
        out += _exif(im)
    return out


def _xmp(im: Image.Image) -> list[Finding]:
    packet = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or b""
    if not packet:
        return []
    if len(packet) > MAX_XMP_BYTES:
        return [Finding("xmp", NONE, "The file's XMP metadata is too large to read.")]
    try:
        tree = im.getxmp()
    except Exception as exc:  # defusedxml refuses entity bombs; malformed XML
        return [
            Finding("xmp", NONE, "The file's XMP metadata is malformed and was not read.", details={"error": _cut(exc)})
        ]
    out = []
    for key, value in _walk(tree):
        if key.endswith("DigitalSourceType"):
            kind = str(value).rsplit("/", 1)[-1]
            strength, words = SOURCE_TYPES.get(kind, (None, ""))
            if strength:
                out.append(
                    Finding(
                        "xmp",
                        strength,
                        f"The file's XMP says it is {words} (IPTC digital source type {kind}); unsigned, so anyone "
                        "could have written it.",
                        details={"digital_source_type": kind},
                    )
                )
        elif key.endswith("CreatorTool") and EDITORS.search(str(value)):
            out.append(
                Finding(
                    "xmp",
                    DECLARES_EDITING,
                    f"Edited in {_cut(value)} (XMP creator tool).",
                    details={"tool": _cut(value)},
                )
            )
    return list({f.text: f for f in out}.values())


def _walk(tree) -> list[tuple[str, object]]:
    """(key, leaf value) pairs of a nested dict/list, breadth first, at most MAX_NODES nodes."""
    out, queue, seen = [], [("", tree)], 0
    while queue and seen < MAX_NODES:
        key, node = queue.pop(0)
        seen += 1
        if isinstance(node, dict):
            queue += list(node.items())
        elif isinstance(node, list):
            queue += [(key, v) for v in node]
        else:
            out.append((str(key), node))
    return out


def _png_chunks(im: Image.Image) -> list[Finding]:
    if im.format != "PNG":
        return []
    out = []
    for key, who in GENERATOR_CHUNKS.items():
        value = im.info.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        fields = _parameter_names(key, value)
        out.append(
            Finding(
                "png",
                DECLARES_AI,
                f"{who} parameters in the file" + (f": {', '.join(fields)}" if fields else "") + "; unsigned, so "
                "anyone could have written them.",
                details={"chunk": key, "generator": who, "fields": fields},
            )
        )
    return list({f.details["generator"]: f for f in out}.values())


def _parameter_names(key: str, value: str) -> list[str]:
    """What a generator chunk records, in words (its values, prompts included, are not repeated)."""
    if key == "parameters":
        names = ["prompt"] + [
            n for n in ("Negative prompt", "Steps", "Sampler", "CFG scale", "Seed", "Model") if f"{n}:" in value
        ]
        return [n.lower() for n in names]
    if key in ("prompt", "workflow"):
        return ["workflow"] if value.lstrip().startswith("{") else []
    return []


EXIF_MAKE, EXIF_MODEL, EXIF_SOFTWARE = ExifTags.Base.Make, ExifTags.Base.Model, ExifTags.Base.Software


def _exif(im: Image.Image) -> list[Finding]:
    exif = im.getexif()
    if not exif:
        return []
    make, model, software = (_cut(exif.get(tag, "")).strip("\x00 ") for tag in (EXIF_MAKE, EXIF_MODEL, EXIF_SOFTWARE))
    out = []
    if software and EDITORS.search(software):
        out.append(
            Finding(
                "exif", DECLARES_EDITING, f"Edited in {software} (EXIF software field).", details={"software": software}
            )
        )
    if make or model:
        camera = (
            model
            if make and model.lower().startswith(make.lower().split()[0])
            else " ".join(p for p in (make, model) if p)
        )
        edited = (
            ""
            if software and EDITORS.search(software)
            else (f", software {software}" if software else ", no editing software recorded")
        )
        out.append(
            Finding(
                "exif",
                CAMERA,
                f"Camera: {camera}{edited} (EXIF, which anyone can write).",
                details={"make": make, "model": model, "software": software},
            )
        )
    return out


VIDEO_EDITORS = re.compile(
    r"premiere|final cut|davinci|resolve|capcut|imovie|kdenlive|shotcut|vegas|after effects|filmora|inshot|vn video",
    re.IGNORECASE,
)
# Container tags (MP4/QuickTime, Matroska) that name the device or the program that wrote the file.
VIDEO_MAKE = ("com.apple.quicktime.make", "make", "manufacturer")
VIDEO_MODEL = ("com.apple.quicktime.model", "model")
VIDEO_SOFTWARE = ("com.apple.quicktime.software", "software", "encoder", "encoded_by", "handler_name")


def read_video(source, mime: str, trust_anchors: str = "") -> list[Finding]:
    """A video's provenance, as :func:`read` gives an image's: its C2PA manifest (c2pa-python reads it from MP4
    and MOV), and what its container's own tags claim (camera, editing software). ``source``: a path or a seekable
    binary file."""
    findings: list[Finding] = []
    try:
        if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
            with open(source, "rb") as f:
                findings += _c2pa(f, mime, trust_anchors)
        else:
            source.seek(0)
            findings += _c2pa(source, mime, trust_anchors)
            source.seek(0)
    except Exception:
        log.warning("provenance: the video's C2PA data could not be read", exc_info=True)
        findings.append(Finding("c2pa", NONE, "The video's C2PA data could not be read."))
    try:
        findings += _container_tags(source)
    except Exception:
        log.warning("provenance: the video's container tags could not be read", exc_info=True)
    return _strongest_first(
        findings,
        "No provenance in the video: no C2PA manifest, no camera or editing software named in its container. Videos "
        "shared online usually lose it, so its absence proves nothing either way.",
    )


def _container_tags(source) -> list[Finding]:
    import av

    with av.open(source, "r", metadata_errors="ignore") as container:
        tags = {k.lower(): _cut(v) for k, v in container.metadata.items()}
        for stream in container.streams:
            for k, v in stream.metadata.items():
                tags.setdefault(k.lower(), _cut(v))
    if hasattr(source, "seek"):
        source.seek(0)

    def first(keys):
        return next((tags[k] for k in keys if tags.get(k)), "")

    make, model, software = first(VIDEO_MAKE), first(VIDEO_MODEL), first(VIDEO_SOFTWARE)
    out = []
    for value in tags.values():
        kind = value.rsplit("/", 1)[-1] if IPTC in value else ""
        strength, words = SOURCE_TYPES.get(kind, (None, ""))
        if strength:
            out.append(Finding("container", strength, f"The container declares it {words} (unsigned).", details={}))
    if software and (EDITORS.search(software) or VIDEO_EDITORS.search(software)):
        out.append(
            Finding(
                "container", DECLARES_EDITING, f"Edited in {software} (container tags).", details={"software": software}
            )
        )
    if make or model:
        camera = " ".join(p for p in (make, model) if p)
        out.append(
            Finding(
                "container",
                CAMERA,
                f"Camera: {camera} (container tags, which anyone can write).",
                details={"make": make, "model": model, "software": software},
            )
        )
    return out


@dataclass(frozen=True)
class Ruling:
    label: str  # the verdict once provenance is weighed
    reason: str = ""  # why it differs from the model's, or a warning; "" where provenance changed nothing


def rule(model_label: str, findings: list[Finding]) -> Ruling:
    """The one rule that weighs provenance against the model (README, About page):

    1. A C2PA manifest with a valid signature (intact, by the certificate it names) that declares AI
       generation makes the verdict Deepfake, with or without a face; the model's score stays shown.
       The signer is named; it is marked trusted only where its chain leads to the operator's trust list
       (``DETECTOR_C2PA_TRUST_ANCHORS``, none by default). Trust is shown, not required.
    2. An unsigned declaration of AI generation (XMP digital source type, generator parameters) keeps
       the verdict from being Real: at most Uncertain, since anyone can write one.
    3. An invalid signature is a warning; it changes no verdict.
    4. A camera claim never changes a verdict, and never makes one Real.
    """
    signed = next((f for f in findings if f.strength == DECLARES_AI and f.signed), None)
    if signed:
        return Ruling("Deepfake", f"Deepfake by the file's own signed declaration: {signed.text}")
    unsigned = next((f for f in findings if f.strength == DECLARES_AI), None)
    if unsigned and model_label == "Real":
        return Ruling("Uncertain", f"Not Real: the file declares AI generation, unsigned ({unsigned.text})")
    invalid = next((f for f in findings if f.strength == INVALID_SIGNATURE), None)
    if invalid:
        return Ruling(model_label, f"Warning: {invalid.text}")
    return Ruling(model_label)
