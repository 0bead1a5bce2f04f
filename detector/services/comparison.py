"""Every model version's analysis of one upload, side by side: for the result page, the report and the API.

The verdict shown comes first (its version judged the upload last among the active ones); then
the other versions that analysed it, newest first. Each lists every model it holds (an
ensemble's members and the ensemble, or the one model) with its own image-level probability and
label, the face that decided for it, and its score for each face.
"""

from __future__ import annotations

from ..models import Analysis, Detection, Label, Status, percent_text, verdict_style


def _face_rows(detection_like: Detection) -> list[tuple[int, dict]]:
    return [(n, f) for n, f in enumerate(detection_like.faces or [], start=1) if f.get("box")]


def _image_level(analysis: Analysis) -> list[dict]:
    """Each model's image-level score: as stored, else (rows made before) the version's own."""
    if analysis.model_scores:
        return analysis.model_scores
    if analysis.label not in (Label.REAL, Label.DEEPFAKE, Label.UNCERTAIN, Label.NO_FACE):
        return []
    return [
        {
            "name": analysis.model_name,
            "version": analysis.model_version,
            "title": "",
            "fake_probability": analysis.fake_probability,
            "label": analysis.model_label or analysis.label,
            "face": None,
        }
    ]


def versions_of(detection: Detection) -> list[dict]:
    """The finished analyses of the upload, the one shown as its verdict first, each as::

    {version, name, current, label, style, fake_probability, fake_text, analysed_at,
     models: [{name, version, title, label, style, fake_probability, fake_text, face, ensemble,
               faces: [{number, label, fake_probability, fake_text}]}]}
    """
    analyses = [a for a in detection.analyses.all() if a.status == Status.DONE]
    analyses.sort(
        key=lambda a: (a.model_version != detection.model_version, -(a.analysed_at.timestamp() if a.analysed_at else 0))
    )
    out = []
    for a in analyses:
        view = Detection(faces=a.faces, model_version=a.model_version, threshold=a.threshold, label=a.label)
        faces = _face_rows(view)
        per_face = [(n, view.face_models(f)) for n, f in faces]
        models = []
        for k, m in enumerate(_image_level(a)):
            scores = [
                {
                    "number": n,
                    "label": fm[k].get("label") if k < len(fm) else None,
                    "fake_probability": fm[k]["fake_probability"] if k < len(fm) else None,
                }
                for n, fm in per_face
            ]
            models.append(
                {
                    "name": m.get("name", ""),
                    "version": m.get("version", a.model_version),
                    "title": m.get("title", ""),
                    "label": m.get("label"),
                    "style": verdict_style(m.get("label") or ""),
                    "fake_probability": m.get("fake_probability"),
                    "fake_text": percent_text(m.get("fake_probability")),
                    "face": m.get("face"),
                    "ensemble": bool(m.get("ensemble")),
                    "faces": [{**s, "fake_text": percent_text(s["fake_probability"])} for s in scores],
                }
            )
        out.append(
            {
                "version": a.model_version,
                "name": a.model_name,
                "current": a.model_version == detection.model_version,
                "label": a.label,
                "style": verdict_style(a.label),
                "fake_probability": a.fake_probability,
                "fake_text": percent_text(a.fake_probability),
                "analysed_at": a.analysed_at,
                "models": models,
            }
        )
    return out
