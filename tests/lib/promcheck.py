#!/usr/bin/python3
"""promcheck -- check a Prometheus text exposition (format 0.0.4, what
node_exporter's textfile collector reads) without promtool, for
tests/admin/stats.sh.

    promcheck.py FILE [--dump]

Exit 0 when FILE parses and passes the lint promtool applies to our kind
of metrics; else each problem as "promcheck: line N: ..." on stderr and
exit 1.  With --dump, the samples as JSON on stdout:
[{"name": ..., "labels": {...}, "value": ...}, ...], label values
unescaped, so a test can compare numbers and labels.

Checked: UTF-8, a final newline; "# HELP name text" (escapes \\\\ and \\n
only) and "# TYPE name type" at most once per family and before its
samples; samples "name{l="v",...} value [timestamp]" with valid metric and
label names (no reserved "__" labels, no label twice), label values
escaped as \\\\, \\" and \\n only, a float value (NaN, +Inf, -Inf too), an
integer timestamp; a family's samples together; no series twice.  Lint
(promtool check metrics): every family has HELP and TYPE, a counter's
name ends in _total, and names use base units (seconds, not days...).
"""
import json
import math
import re
import sys

METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
NON_BASE = ("days", "hours", "minutes", "milliseconds", "microseconds",
            "nanoseconds", "kilobytes", "megabytes", "gigabytes", "percent")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count")}


class Bad(Exception):
    pass


def unescape(s, allowed):
    """s with its backslash escapes resolved; only those in allowed."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\":
            if i + 1 >= len(s) or s[i + 1] not in allowed:
                raise Bad(f"bad escape in {s!r}")
            out.append({"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_labels(text, pos):
    """The labels of a sample from text[pos] == "{": (dict, end)."""
    labels, i = {}, pos + 1
    while True:
        if i < len(text) and text[i] == "}":
            return labels, i + 1
        m = LABEL.match(text, i)
        if not m:
            raise Bad(f"bad label name at column {i + 1}")
        name = m.group(0)
        if name.startswith("__"):
            raise Bad(f"reserved label name {name}")
        if name in labels:
            raise Bad(f"label {name} twice")
        i = m.end()
        if text[i:i + 2] != '="':
            raise Bad(f'label {name}: expected ="')
        i += 2
        j = i
        while j < len(text) and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        if j >= len(text):
            raise Bad(f"label {name}: unterminated value")
        labels[name] = unescape(text[i:j], '\\"n')
        i = j + 1
        if i < len(text) and text[i] == ",":
            i += 1
        elif i >= len(text) or text[i] != "}":
            raise Bad("expected , or } after a label")


def parse_value(s):
    if s in ("NaN", "+Inf", "-Inf"):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}[s]
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise Bad(f"bad value {s!r}")
    return float(s)


def family_of(name, types):
    """The family a sample name belongs to (histogram/summary suffixes)."""
    for fam, t in types.items():
        if name == fam or any(name == fam + x for x in SUFFIXES.get(t, ())):
            return fam
    return name


def check(data):
    """(problems, samples) of the exposition data (bytes)."""
    problems, samples = [], []
    helps, types, seen, done = {}, {}, set(), set()
    current = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return [f"line ?: not UTF-8 ({e})"], samples
    if text and not text.endswith("\n"):
        problems.append("line ?: no newline at the end")
    for n, raw in enumerate(text.split("\n")[:-1] if text else [], 1):
        try:
            if raw.strip() == "":
                continue
            if raw.startswith("#"):
                parts = raw.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    if not METRIC.fullmatch(name):
                        raise Bad(f"bad metric name {name!r}")
                    if name in done or (name in seen and parts[1] == "TYPE"):
                        raise Bad(f"{parts[1]} of {name} after its samples")
                    table = helps if parts[1] == "HELP" else types
                    if name in table:
                        raise Bad(f"{parts[1]} of {name} twice")
                    rest = parts[3] if len(parts) > 3 else ""
                    if parts[1] == "HELP":
                        helps[name] = unescape(rest, "\\n")
                    elif rest not in TYPES:
                        raise Bad(f"bad type {rest!r} of {name}")
                    else:
                        types[name] = rest
                    if current != name:
                        if current:
                            done.add(current)
                        current = name
                continue
            m = METRIC.match(raw)
            if not m:
                raise Bad("bad metric name")
            name, i, labels = m.group(0), m.end(), {}
            if i < len(raw) and raw[i] == "{":
                labels, i = parse_labels(raw, i)
            rest = raw[i:].split()
            if not raw[i:i + 1] == " " or len(rest) not in (1, 2):
                raise Bad("expected ' value [timestamp]'")
            value = parse_value(rest[0])
            if len(rest) == 2 and not re.fullmatch(r"-?\d+", rest[1]):
                raise Bad(f"bad timestamp {rest[1]!r}")
            fam = family_of(name, types)
            if fam in done:
                raise Bad(f"samples of {fam} are not together")
            if current != fam:
                if current:
                    done.add(current)
                current = fam
            seen.add(fam)
            key = (name, tuple(sorted(labels.items())))
            if key in {s["key"] for s in samples}:
                raise Bad(f"series {name}{labels} twice")
            samples.append({"key": key, "name": name, "labels": labels,
                            "value": value})
        except Bad as e:
            problems.append(f"line {n}: {e}")
    for fam in sorted(seen):
        if fam not in helps:
            problems.append(f"lint: {fam} has no HELP")
        if fam not in types:
            problems.append(f"lint: {fam} has no TYPE")
        elif types[fam] == "counter" and not fam.endswith("_total"):
            problems.append(f"lint: counter {fam} should end in _total")
        for unit in NON_BASE:
            if re.search(rf"(^|_){unit}(_|$)", fam):
                problems.append(f'lint: {fam}: use a base unit, not "{unit}"')
    return problems, samples


def main(argv):
    if len(argv) < 2 or len(argv) > 3 or (len(argv) == 3 and argv[2] != "--dump"):
        print("usage: promcheck.py FILE [--dump]", file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        problems, samples = check(f.read())
    for p in problems:
        print(f"promcheck: {p}", file=sys.stderr)
    if len(argv) == 3 and not problems:
        json.dump([{k: s[k] for k in ("name", "labels", "value")}
                   for s in samples], sys.stdout, indent=1)
        print()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
