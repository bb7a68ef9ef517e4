#!/usr/bin/env python3
"""Regenerates docs/cli.md from the built CLI's --help texts (dev-only).

Run from the repository root after building:  python3 tools/make_cli_doc.py
Commands whose --help fails (still the weak placeholder) are listed as not in the build.
"""
import re
import subprocess

CLI = "build/affinity"
INTRO = """# The affinity command line

`build/affinity COMMAND [flags]`; `affinity COMMAND --help` prints the text this page is made from
(`python3 tools/make_cli_doc.py` regenerates it). Flags take `--name value` or `--name=value`; unknown
flags and missing values are errors naming the flag. Exit status 0 on success, non-zero on failure with
one line on stderr, `affinity CMD: error: ...`, naming the file and line, field or flag at fault.
Outputs are written atomically (temporary file + rename): a failed command leaves no half-written file.
Progress bars are drawn only when stderr is a terminal.

Typical use:

```
build/affinity run --out runs/default        # the whole pipeline on the bundled sample
build/affinity report --run runs/default --out report.html --png-prefix fig
build/affinity recommend --run runs/default --basket "24852,21137"
build/affinity groups --run runs/default --out groups.csv
```

The run folder and what `run`, `report`, `recommend` and `groups` compute: [report.md](report.md).
File formats: [data-formats.md](data-formats.md), [checkpoint-format.md](checkpoint-format.md).
"""


def main():
    top = subprocess.run([CLI, "--help"], capture_output=True, text=True, check=True).stdout
    cmds = []
    for line in top.splitlines():
        m = re.match(r"  (\S+)\s+(.*)", line)
        if m and not m.group(1).startswith("--"):
            cmds.append((m.group(1), m.group(2)))
    out = [INTRO, "| command | what it does |", "|---|---|"]
    out += [f"| [`{c}`](#{c}) | {s} |" for c, s in cmds]
    out.append("")
    for c, s in cmds:
        r = subprocess.run([CLI, c, "--help"], capture_output=True, text=True)
        out += [f"## {c}", ""]
        if r.returncode != 0:
            out += [f"{s}. **Not in this build yet**: `affinity {c}` prints \"not available in this "
                    "build yet\" and exits 2.", ""]
            continue
        usage, rest = r.stdout.split("\n", 1)
        summary, flags = rest.split("\nflags:\n")
        out += ["```", usage.replace("usage: ", "", 1), "```", "", " ".join(summary.split()), "",
                "| flag | meaning |", "|---|---|"]
        for line in flags.splitlines():
            m = re.match(r"  (--\S+(?: \S+)?)\s{2,}(.*)", line)
            if m and m.group(1) != "--help":
                meaning = m.group(2).replace("|", "\\|")
                flag = m.group(1).replace("|", "\\|")
                out.append(f"| `{flag}` | {meaning} |")
        out.append("")
    with open("docs/cli.md", "w", encoding="utf-8") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
