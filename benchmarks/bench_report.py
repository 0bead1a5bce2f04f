"""``make bench``'s report: latest.md from latest.json."""

from __future__ import annotations


def video_markdown(v: dict) -> list[str]:
    lines = [
        "",
        "## A video's whole analysis (probe, 2 frames a second sampled and decoded, faces, tracks, scores, heatmaps)",
        "",
        "Generated H.264 clips, 1280x720 at 30 frames a second, one face per frame and a cut half-way "
        + ", ".join(f"({name}: {c['bytes'] / 1e6:.1f} MB)" for name, c in v["clips"].items())
        + "; a process per model, on the cores above.",
        "",
        "| model | clip | frames looked at | tracks | wall time | of which decoding | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for bundle, rows in v["models"].items():
        for clip, row in rows.items():
            lines.append(
                f"| {row['model']} ({bundle}) | {clip} | {row['frames_sampled']} | {row['tracks']} | "
                f"{row['seconds']} s | {row['decode_seconds']} s | {row['peak_rss_mb']} MB |"
            )
    return lines


def unseen_markdown(version: str, unseen: dict) -> list[str]:
    """The default's figures per kind of fake it never trained on, at its thresholds (what the speed buys)."""
    lines = [
        f"## What {version} does with fakes of kinds it never trained on (its `metrics-unseen.json`)",
        "",
        "| kind | AUC [95 %] | caught (Deepfake) | let through (Real) | reals called Deepfake |",
        "|---|---|---|---|---|",
    ]
    for k in unseen["kinds"]:
        low, high = k["interval"] or (float("nan"), float("nan"))
        lines.append(
            f"| {k['title']} | {k['auc']:.3f} [{low:.3f}, {high:.3f}] | {k['caught']:.1%} | {k['called_real']:.1%} | "
            f"{k['reals_accused']:.1%} |"
        )
    return [*lines, ""]


def markdown(r: dict) -> str:
    lines = [
        f"# Benchmark results ({r['when']})",
        "",
        f"Machine: {r['machine']}, {r['cores']} cores; {r['python']}; model {r['model']}; "
        f"each figure the median of {r['runs']} runs. Made by `make bench`.",
        "",
    ]
    if r.get("unseen"):
        lines += unseen_markdown(r["model"], r["unseen"])
    if "micro" in r:
        m = r["micro"]
        lines += [
            "## Classifier, per face (224 px)",
            "",
            "| engine | batch 1 median | batch 1 p95 | batch 8 median | batch 8 p95 |",
        ]
        lines += ["|---|---|---|---|---|"]
        for name, row in m["classifier"].items():
            b1, b8 = row["batch_1"], row["batch_8"]
            lines.append(
                f"| {name} | {b1['median_ms']} ms | {b1['p95_ms']} ms | {b8['median_ms']} ms | {b8['p95_ms']} ms |"
            )
        lines += ["", "## Face detection, 1024x768 photo (BlazeFace short + full range, LiteRT)", ""]
        lines += ["| threads | median | p95 | faces found |", "|---|---|---|---|"]
        for name, row in m["face_detection"].items():
            lines.append(f"| {name} | {row['median_ms']} ms | {row['p95_ms']} ms | {row['faces_found']} |")
        lines += ["", "## Whole analysis of a 1280x800 (1 MP) JPEG: decode, faces, classify", ""]
        lines += ["| configuration | 0 faces | 1 face | 4 faces |", "|---|---|---|---|"]
        for name, row in m["analysis"].items():
            cells = [f"{c['median_ms']} ms (p95 {c['p95_ms']}, found {c['faces_found']})" for c in row.values()]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if m.get("evaluation"):
            e = m["evaluation"]
            lines += [
                "",
                f"## Dataset evaluation (`evaluate_detector`'s path), {e['images']} val images",
                "",
                "| engine threads | images/s |",
                "|---|---|",
            ]
            lines += [f"| {k} | {v} |" for k, v in e.items() if k != "images"]
    if "upload" in r:
        u = r["upload"]
        names = list(u["photos"])
        keys = [k for k in u["photos"][names[0]] if k not in ("faces_found", "decoded_at")]
        lines += [
            "",
            "## CPU of one upload, split into its parts (in-process, the upload form, SQLite, 2 threads)",
            "",
            "| part | " + " | ".join(f"{n} ({u['bytes'][n] / 1e6:.2f} MB)" for n in names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        lines += [f"| {k} | " + " | ".join(f"{u['photos'][n][k]} ms" for n in names) + " |" for k in keys]
        lines += [
            "| decoded at | " + " | ".join("x".join(map(str, u["photos"][n]["decoded_at"])) for n in names) + " |",
            "",
            f"The 12 MP photo's upload costs {u['ratio_12mp_to_bench']}x the bench photo's.",
        ]
    if "http" in r:
        h = r["http"]
        lines += [
            "",
            f"## HTTP end to end: upload a {h['upload_bytes'] / 1e6:.2f} MB JPEG until the verdict is stored",
            "",
            f"gunicorn on 127.0.0.1, {h['workers']} workers each (ours: the repository's gunicorn.conf.py, gthread "
            "workers; the seed: gunicorn's default sync workers). Ours: the upload form, SQLite, rate limit off. "
            "Seed: Flask, MobileNetV2 224 px + dense head, `model.predict` per request, one shared upload path.",
            "",
            "| N clients | ours req/s | ours p50 | ours p95 | ours errors "
            "| seed req/s | seed p50 | seed p95 | seed errors | ratio |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, ours in h["ours"]["clients"].items():
            seed = h["seed"]["clients"][n]
            lines.append(
                f"| {n} | {ours['requests_per_s']} | {ours['p50_ms']:.0f} ms | {ours['p95_ms']:.0f} ms | "
                f"{ours['errors']}/{ours['requests']} | {seed['requests_per_s']} | {seed['p50_ms']:.0f} ms | "
                f"{seed['p95_ms']:.0f} ms | {seed['errors']}/{seed['requests']} | {h['ratio_requests_per_s'][n]}x |"
            )
        lines += [
            "",
            "| server | peak RSS per worker (ours: after heatmaps too) | cold start to first verdict |",
            "|---|---|---|",
        ]
        for name in ("ours", "seed"):
            rss = ", ".join(f"{x} MB" for x in h[name]["peak_rss_mb_per_worker"])
            lines.append(f"| {name} | {rss} | {h[name]['cold_start_s']} s |")
    if r.get("queue", {}).get("workers"):
        q = r["queue"]
        lines += [
            "",
            f"## Queue: 1 web process (gunicorn) + Celery worker processes on Redis, {q['database']}",
            "",
            f"{q['clients']} clients upload {q['uploads']} of the same JPEG. End to end: uploads and analyses at "
            "once, until every verdict is stored (web process, workers, PostgreSQL and the clients share the 2 "
            "cores). Workers alone: the uploads queued first, then only the workers run until the queue is empty.",
            "",
            "| worker processes | end to end, verdicts/s | workers alone, verdicts/s |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {v['verdicts_per_s']} | {v['queue_drained_per_s']} |" for k, v in q["workers"].items()]
        lines += [
            "",
            f"Scaling from 1 to 2 worker processes: {q['scaling_1_to_2_verdicts_per_s']}x end to end, "
            f"{q['scaling_1_to_2_queue_drained_per_s']}x for the workers alone (2 cores: 2x is the ceiling).",
        ]
    if "video" in r:
        lines += video_markdown(r["video"])
    return "\n".join(lines) + "\n"
