"""Provenance read from files made here: a C2PA manifest signed with a certificate chain generated in the test,
the same file changed after signing, XMP digital source types, Stable Diffusion and ComfyUI PNG chunks, EXIF
from a camera and from Photoshop, stripped files, hostile metadata; and the rule that weighs them."""

from __future__ import annotations

import datetime
import io
from http import HTTPStatus

import pytest
from django.urls import reverse
from PIL import Image, PngImagePlugin

from detector import provenance
from detector.models import Detection
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db

AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def jpeg(**save) -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", (320, 240), (150, 110, 90))
    for x in range(0, 320, 8):
        im.paste((x % 256, 80, 160), (x, 0, x + 4, 80))
    im.save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def png(chunks: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (90, 120, 150)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def xmp(source_type: str = "", creator_tool: str = "") -> bytes:
    attrs = ""
    if source_type:
        attrs += f' Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/{source_type}"'
    if creator_tool:
        attrs += f' xmp:CreatorTool="{creator_tool}"'
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        f'{attrs}/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def exif(make="", model="", software="") -> bytes:
    e = Image.Exif()
    for tag, value in ((0x010F, make), (0x0110, model), (0x0131, software)):
        if value:
            e[tag] = value
    return jpeg(exif=e.tobytes())


@pytest.fixture(scope="module")
def signer(signer_and_root):
    return signer_and_root[0]


@pytest.fixture(scope="module")
def signer_and_root():
    """A C2PA signer with a chain made here: a CA and a leaf with the signing extensions C2PA asks for; and the
    CA's certificate (PEM), as an operator's trust list would hold it."""
    c2pa = pytest.importorskip("c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn):
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Generator Inc"),
            ]
        )

    def usage(ca):
        return x509.KeyUsage(True, False, False, False, False, ca, ca, False, False)

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Test Root CA"))
        .issuer_name(name("Test Root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("Test Image Generator"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None))
    return signer, ca.public_bytes(pem).decode()


def signed(signer, actions, data=None) -> bytes:
    import c2pa

    manifest = {
        "claim_generator_info": [{"name": "Test Image Generator", "version": "1.0"}],
        "title": "made.jpg",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(data or jpeg()), out)
    return out.getvalue()


def strengths(data: bytes, mime="image/jpeg") -> list[tuple[str, str, bool]]:
    return [(f.source, f.strength, f.signed) for f in provenance.read(data, mime)]


def test_a_valid_c2pa_manifest_declaring_ai_generation_is_read_with_its_signer(signer):
    [finding] = provenance.read(signed(signer, [{"action": "c2pa.created", "digitalSourceType": AI}]), "image/jpeg")
    assert finding.strength == "declares_ai" and finding.signed and finding.signer == "Test Generator Inc"
    assert finding.text == "Signed by Test Generator Inc: made by a generative AI model, with Test Image Generator 1.0."


def test_a_file_changed_after_signing_has_an_invalid_signature(signer):
    data = bytearray(signed(signer, [{"action": "c2pa.created", "digitalSourceType": AI}]))
    data[-200] ^= 0xFF  # a byte of the picture, after the manifest was signed
    [finding] = provenance.read(bytes(data), "image/jpeg")
    assert finding.strength == "invalid_signature" and not finding.signed
    assert "assertion.dataHash.mismatch" in finding.text and "changed after signing" in finding.text


def test_a_signed_camera_capture_then_edited_is_editing_and_capture_not_generation(signer):
    capture = {"action": "c2pa.created", "digitalSourceType": AI.replace("trainedAlgorithmicMedia", "digitalCapture")}
    findings = provenance.read(signed(signer, [capture, {"action": "c2pa.color_adjustments"}]), "image/jpeg")
    assert [(f.strength, f.signed) for f in findings] == [("declares_editing", True), ("camera", True)]


@pytest.mark.parametrize(
    "kind, strength",
    [
        ("trainedAlgorithmicMedia", "declares_ai"),
        ("compositeWithTrainedAlgorithmicMedia", "declares_ai"),
        ("algorithmicMedia", "declares_ai"),
        ("composite", "declares_editing"),
        ("algorithmicallyEnhanced", "declares_editing"),
        ("digitalCapture", "camera"),
    ],
)
def test_each_xmp_digital_source_type(kind, strength):
    findings = provenance.read(jpeg(xmp=xmp(kind)), "image/jpeg")
    assert [(f.source, f.strength, f.signed) for f in findings] == [("xmp", strength, False)]
    assert kind in findings[0].text and "unsigned" in findings[0].text


def test_stable_diffusion_and_comfyui_parameters_in_png_chunks():
    sd = "a portrait of a woman\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Model: x"
    [finding] = provenance.read(png({"parameters": sd}), "image/png")
    assert finding.strength == "declares_ai" and not finding.signed
    assert finding.text.startswith("Stable Diffusion (AUTOMATIC1111 or Forge) parameters in the file: prompt, ")
    assert "sampler" in finding.text and "seed" in finding.text and "a portrait of a woman" not in finding.text
    [comfy] = provenance.read(png({"prompt": '{"3": {"class_type": "KSampler"}}', "workflow": "{}"}), "image/png")
    assert comfy.text.startswith("ComfyUI parameters in the file: workflow")


def test_exif_from_a_camera_and_from_photoshop():
    [camera] = provenance.read(exif("Canon", "Canon EOS R5"), "image/jpeg")
    assert camera.strength == "camera"
    assert camera.text == "Camera: Canon EOS R5, no editing software recorded (EXIF, which anyone can write)."
    edited = provenance.read(exif("Canon", "Canon EOS R5", "Adobe Photoshop 25.1 (Windows)"), "image/jpeg")
    assert [f.strength for f in edited] == ["declares_editing", "camera"]
    assert edited[0].text == "Edited in Adobe Photoshop 25.1 (Windows) (EXIF software field)."


def test_a_stripped_file_says_that_absence_proves_nothing():
    [finding] = provenance.read(jpeg(), "image/jpeg")
    assert finding.strength == "none" and "proves nothing" in finding.text


@pytest.mark.parametrize(
    "packet, words",
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><x>&b;</x>',
            "malformed",
        ),
        (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed>", "malformed"),
        (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>" + b"<a>" * 3000 + b"</a>" * 3000 + b"</x:xmpmeta>", None),
        (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><a>" + b"x" * 300_000 + b"</a></x:xmpmeta>", "too large"),
    ],
)
def test_hostile_xmp_is_refused_or_cut_without_an_error(packet, words):
    if len(packet) < 60_000:  # a JPEG segment holds at most 64 KB; a PNG chunk more
        findings = provenance.read(jpeg(xmp=packet), "image/jpeg")
    else:
        findings = provenance.read(png({"XML:com.adobe.xmp": packet.decode()}), "image/png")
    assert findings and all(f.strength == "none" for f in findings)
    if words:
        assert any(words in f.text for f in findings)


@pytest.mark.parametrize(
    "model, finding, label",
    [
        ("Real", provenance.Finding("c2pa", "declares_ai", "Signed by X: made by AI.", signed=True), "Deepfake"),
        ("No face", provenance.Finding("c2pa", "declares_ai", "Signed by X: made by AI.", signed=True), "Deepfake"),
        ("Real", provenance.Finding("xmp", "declares_ai", "XMP says AI."), "Uncertain"),
        ("Deepfake", provenance.Finding("xmp", "declares_ai", "XMP says AI."), "Deepfake"),
        ("No face", provenance.Finding("png", "declares_ai", "SD parameters."), "No face"),
        ("Real", provenance.Finding("exif", "camera", "Camera: X."), "Real"),
        ("Uncertain", provenance.Finding("exif", "camera", "Camera: X."), "Uncertain"),
        ("Real", provenance.Finding("c2pa", "invalid_signature", "Changed after signing."), "Real"),
    ],
)
def test_the_rule(model, finding, label):
    ruling = provenance.rule(model, [finding])
    assert ruling.label == label
    if finding.strength == "invalid_signature":
        assert ruling.reason.startswith("Warning:")


def test_a_signed_ai_image_is_called_deepfake_with_the_reason_and_the_models_own_verdict(alice, stub_detector, signer):
    stub_detector.fake_probability = 0.02  # the model alone says Real
    data = signed(signer, [{"action": "c2pa.created", "digitalSourceType": AI}])
    response = alice.post(reverse("detector:upload"), {"image": upload_file("made.jpg", data)})
    assert response.status_code == HTTPStatus.FOUND
    detection = Detection.objects.get()
    assert (detection.label, detection.model_label) == ("Deepfake", "Real") and detection.fake_probability == 0.02
    assert detection.verdict_reason.startswith(
        "Deepfake by the file's own signed declaration: Signed by Test Generator"
    )
    page = " ".join(alice.get(detection.get_absolute_url()).content.decode().split())
    assert "The model alone said Real (2 % fake)" in page and "What the file says about where it came from" in page
    body = alice.get(reverse("detector:status", args=[detection.pk])).json()
    assert body["label"] == "Deepfake"


def test_the_api_returns_each_finding_with_its_strength_and_the_rule(api, stub_detector):
    stub_detector.fake_probability = 0.02
    data = png({"parameters": "a face\nSteps: 20, Sampler: Euler, Seed: 1"})
    response = api.post(reverse("api:detections"), {"image": upload_file("sd.png", data, "image/png")})
    body = response.json()["results"][0]["detection"]
    assert body["label"] == "Uncertain" and body["model_label"] == "Real"
    assert body["verdict_reason"].startswith("Not Real: the file declares AI generation, unsigned")
    [finding] = body["provenance"]
    assert finding["strength"] == "declares_ai" and finding["signed"] is False and finding["source"] == "png"


def test_an_earlier_near_identical_check_by_someone_else_is_counted_without_anything_of_theirs(
    alice, other_user, stub_detector
):
    from django.test import Client

    from tests.conftest import image_bytes

    bob = Client()
    bob.force_login(other_user)
    original = image_bytes("JPEG", size=(640, 480), quality=95)
    bob.post(reverse("detector:upload"), {"image": upload_file("secret-name.jpg", original)})
    theirs = Detection.objects.get()
    Detection.objects.filter(pk=theirs.pk).update(review_verdict="fake", review_note="private reviewer note")
    with Image.open(io.BytesIO(original)) as im:  # the same picture, rescaled and re-encoded
        buf = io.BytesIO()
        im.resize((480, 360)).save(buf, "JPEG", quality=70)
    alice.post(reverse("detector:upload"), {"image": upload_file("mine.jpg", buf.getvalue())})
    mine = Detection.objects.exclude(pk=theirs.pk).get()
    assert mine.sha256 != theirs.sha256 and mine.phash and theirs.phash
    page = " ".join(alice.get(mine.get_absolute_url()).content.decode().split())
    assert (
        "checked 1 time before" in page and "Verdicts: Deepfake 1." in page and "Reviewers: reviewed: fake 1." in page
    )
    assert "secret-name" not in page and "private reviewer note" not in page and str(theirs.pk) not in page
    # the earlier one sees no later sighting, and an unrelated image none
    assert "Seen before" not in alice.get(reverse("detector:upload")).content.decode()
    other_page = bob.get(theirs.get_absolute_url()).content.decode()
    assert "Seen before on this platform" not in other_page


def test_the_api_counts_earlier_sightings_for_one_detection(api, stub_detector):
    data = upload_file().read()
    first = api.post(reverse("api:detections"), {"image": upload_file("a.jpg", data)}).json()
    second = api.post(reverse("api:detections"), {"image": upload_file("b.jpg", data)}).json()
    pk = second["results"][0]["detection"]["id"]
    sightings = api.get(reverse("api:detection", args=[pk])).json()["earlier_sightings"]
    assert sightings["count"] == 1 and sightings["verdicts"] == {"Deepfake": 1} and sightings["reviews"] == {}
    assert first["results"][0]["detection"]["earlier_sightings"] is None  # lists and uploads: not searched


def test_a_signer_on_the_operators_trust_list_is_marked_trusted(signer_and_root):
    signer, root = signer_and_root
    data = signed(signer, [{"action": "c2pa.created", "digitalSourceType": AI}])
    [untrusted] = provenance.read(data, "image/jpeg")
    [trusted] = provenance.read(data, "image/jpeg", trust_anchors=root)
    assert not untrusted.trusted and trusted.trusted and trusted.signed
    assert "(on this platform's trust list)" in trusted.text
    assert provenance.rule("Real", [untrusted]).label == provenance.rule("Real", [trusted]).label == "Deepfake"


def test_a_manifest_with_many_ingredients_is_read_without_an_error(alice, stub_detector, signer):
    import c2pa

    manifest = {
        "claim_generator_info": [{"name": "Many parts", "version": "1"}],
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": AI}]}}
        ],
    }
    part = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(part, "JPEG")
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        for i in range(40):
            part.seek(0)
            builder.add_ingredient({"title": f"part-{i}.jpg", "relationship": "componentOf"}, "image/jpeg", part)
        builder.sign(signer, "image/jpeg", io.BytesIO(jpeg()), out)
    [finding] = provenance.read(out.getvalue(), "image/jpeg")
    assert finding.strength == "declares_ai" and finding.details["ingredients"] == 40
    response = alice.post(reverse("detector:upload"), {"image": upload_file("parts.jpg", out.getvalue())})
    assert response.status_code == HTTPStatus.FOUND and Detection.objects.get().label == "Deepfake"


def test_c2pa_bytes_that_are_not_a_manifest_are_reported_not_raised():
    data = bytearray(jpeg())
    # an APP11 segment that claims to hold JUMBF (a C2PA store) but holds garbage
    segment = b"\xff\xeb" + (2 + 8 + 64).to_bytes(2, "big") + b"JP\x00\x01\x00\x00\x00\x01" + b"\x00" * 64
    data[2:2] = segment
    findings = provenance.read(bytes(data), "image/jpeg")
    assert findings and all(f.strength in ("none", "declares_ai", "camera", "declares_editing") for f in findings)
