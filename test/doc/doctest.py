#!/usr/bin/python3
"""The documentation's commands as tests (docs/doc-tests.md).

Every shell block of README.md and docs/*.md (fences tagged sh, bash, shell or
console), every example of the tools' --help (the lines of an "Examples:"
section) and every example of the man pages (man/ or docs/man/: the .EX/.EE and
.nf/.fi blocks of an EXAMPLES section) is checked:

  syntax   bash -n, and each of our tools named in it (glow-*, pngcat) accepts
           every option it is given there: the option appears in the tool's
           --help (for tools with commands, TOOL COMMAND --help as well);
  run      the block runs, as a bash script under set -e -o pipefail, in a fresh
           copy of the fixture (test/doc/fixture.sh) with the tools of the build
           first on PATH and HOME the copy; it fails when a command exits non-zero
           or prints an error on stderr, naming the file, line and command.

Markdown blocks and man page examples run unless declared otherwise; --help
examples run. Declarations are HTML comments right before a Markdown block
(only blank lines between), or roff comments '.\\" doctest: ...' right before
the .EX or .nf of a man page's example (only blank lines and comments between,
one declaration a comment line); the keywords are the same:

  <!-- doctest: skip REASON -->         not run (a GPU, several machines, an
                                        install): syntax-checked only
  <!-- doctest: sub OLD => NEW -->      OLD replaced by NEW in the block before
                                        it runs (what cannot run in a test:
                                        data set paths, step counts)
  <!-- doctest: before COMMAND -->      run first, in the same copy (hidden set-up)
  <!-- doctest: after COMMAND -->       run after the block: a check of its result
  <!-- doctest: env NAME=VALUE -->      set for the block

A comment "<!-- doctest-file: ... -->" ('.\\" doctest-file: ...' in a man page)
holds the same declarations for every later block of its file. Several may
share one HTML comment, one a line.

Usage: doctest.py [--build DIR] [--list] [--keep] [--fixture DIR] [FILE...]
(no FILE: README.md, docs/*.md, the man pages and every tool's --help)
Exit 0 when every block passes, 1 otherwise; the last line reads
"doc: N passed, N failed" and the line before it the counts of blocks run and
syntax-checked only, in all and per source: "doc: N run, N syntax-checked only
(Markdown blocks: N run, N syntax-checked only; --help examples: ...; man page
examples: ...)".
"""
import argparse
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHELL_TAGS = {"sh", "bash", "shell", "console", "shell-session"}
BLOCK_TIMEOUT = 120
# stderr lines that make a block fail even when every command exits 0
ERROR_RE = re.compile(r"(?i)\berror\b|command not found|no such file or directory|"
                      r"traceback \(most recent|not a recognised|skipped [1-9][0-9]* of")


class Block:
    def __init__(self, source, line, text, kind):
        self.source = source      # file (or "glow-prep --help")
        self.line = line          # line of the first command in source
        self.text = text          # the commands, as written
        self.kind = kind          # "md", "help" or "man"
        self.skip = None          # reason when not run
        self.subs = []
        self.before = []
        self.after = []
        self.env = {}

    def where(self, k=0):
        return "%s:%d" % (self.source, self.line + k)


def parse_decls(comment, block, where):
    for raw in comment.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"(skip|sub|before|after|env)\b\s*(.*)$", line)
        if not m:
            raise SystemExit("%s: unknown doctest declaration '%s' (skip, sub, before, after, "
                             "env)" % (where, line))
        what, arg = m.group(1), m.group(2).strip()
        if what == "skip":
            block.skip = arg or "marked skip"
        elif what == "sub":
            if " => " not in arg:
                raise SystemExit("%s: doctest sub needs 'OLD => NEW'" % where)
            old, new = arg.split(" => ", 1)
            block.subs.append((old, new))
        elif what == "env":
            if "=" not in arg:
                raise SystemExit("%s: doctest env needs NAME=VALUE" % where)
            k, v = arg.split("=", 1)
            block.env[k.strip()] = v
        else:
            getattr(block, what).append(arg)


def markdown_blocks(path, rel):
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, file_decls, pending = [], [], []
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("<!--"):
            start = i
            text = s
            while "-->" not in text and i + 1 < len(lines):
                i += 1
                text += "\n" + lines[i].strip()
            body = text[4:text.index("-->")].strip()
            m = re.match(r"doctest(-file)?:\s*(.*)$", body, re.S)
            if m:
                parse_decls(m.group(2), Block(rel, 0, "", "md"), "%s:%d" % (rel, start + 1))
                (file_decls if m.group(1) else pending).append((m.group(2), start + 1))
            i += 1
            continue
        fence = re.match(r"(\s*)(```+|~~~+)\s*([\w-]*)", line)
        if fence:
            indent, mark, tag = fence.group(1), fence.group(2), fence.group(3).lower()
            body, j = [], i + 1
            while j < len(lines) and not lines[j].strip().startswith(mark):
                body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
                j += 1
            if pending and tag not in SHELL_TAGS:
                raise SystemExit("%s:%d: a doctest declaration before a block that is not "
                                 "a shell block" % (rel, pending[0][1]))
            if tag in SHELL_TAGS:
                if tag in ("console", "shell-session"):
                    # commands are the lines after "$ " (and their continuations)
                    cmds, cont = [], False
                    for b in body:
                        if b.startswith("$ ") or cont:
                            cmds.append(b[2:] if b.startswith("$ ") and not cont else b)
                            cont = b.endswith("\\")
                        else:
                            cmds.append("")
                    body = cmds
                blk = Block(rel, i + 2, "\n".join(body), "md")
                for decl, at in file_decls + pending:
                    parse_decls(decl, blk, "%s:%d" % (rel, at))
                blocks.append(blk)
            pending = []
            i = j + 1
            continue
        if s and pending:
            raise SystemExit("%s:%d: a doctest declaration not followed by a shell block"
                             % (rel, pending[0][1]))
        i += 1
    if pending:
        raise SystemExit("%s:%d: a doctest declaration not followed by a shell block"
                         % (rel, pending[0][1]))
    return blocks


def roff_text(s):
    s = s.replace("\\-", "-").replace("\\(aq", "'").replace("\\(dq", '"').replace("\\e", "\\")
    s = s.replace("\\&", "").replace("\\ ", " ").replace("\\(ti", "~").replace("\\(ha", "^")
    return re.sub(r"\\f[BIRP]|\\f\(..", "", s)


def man_blocks(path, rel):
    """The examples of a man page: the .EX/.EE and .nf/.fi blocks of an EXAMPLES
    section. Declarations are roff comments, one a line, with the keywords and
    parser of Markdown's: '.\\" doctest: DECL' directly before the .EX or .nf
    (only blank lines and other comments between), '.\\" doctest-file: DECL'
    for every later example of the page."""
    blocks, section, inblock, body, start = [], "", False, [], 0
    file_decls, pending = [], []
    for n, line in enumerate(open(path, encoding="utf-8", errors="replace").read().split("\n"), 1):
        m = re.match(r'^[.\']\s*\\"\s*doctest(-file)?:\s*(.*)$', line)
        if m and inblock:
            # it would apply to nothing: an example's own lines are its commands
            raise SystemExit("%s:%d: a doctest declaration inside an example" % (rel, n))
        if m:
            # checked here, so that a bad one fails even before a skipped example
            parse_decls(m.group(2), Block(rel, 0, "", "man"), "%s:%d" % (rel, n))
            (file_decls if m.group(1) else pending).append((m.group(2), n))
            continue
        if inblock:
            if line.startswith((".EE", ".fi")):
                inblock = False
                cmds = [roff_text(b) for b in body if not b.startswith((".", "'"))]
                if any(c.strip() for c in cmds):
                    blk = Block(rel, start, "\n".join(cmds), "man")
                    for d, at in file_decls + decls:
                        parse_decls(d, blk, "%s:%d" % (rel, at))
                    blocks.append(blk)
                elif decls:
                    raise SystemExit("%s:%d: a doctest declaration before an example with "
                                     "no commands" % (rel, decls[0][1]))
            else:
                body.append(line)
            continue
        if "EXAMPLE" in section and line.startswith((".EX", ".nf")):
            inblock, body, start, decls, pending = True, [], n + 1, pending, []
            continue
        # anything but a blank line or a comment parts a declaration from the example
        if pending and line.strip() and not re.match(r'^[.\']\s*\\"', line):
            raise SystemExit("%s:%d: a doctest declaration not followed by an example "
                             "(.EX or .nf of an EXAMPLES section)" % (rel, pending[0][1]))
        if line.startswith(".SH"):
            section = line[3:].strip().strip('"').upper()
    if pending:
        raise SystemExit("%s:%d: a doctest declaration not followed by an example "
                         "(.EX or .nf of an EXAMPLES section)" % (rel, pending[0][1]))
    return blocks


def tool_names(bindir):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(bindir, "*"))
                  if os.access(p, os.X_OK) and not os.path.isdir(p))


def help_text(bindir, tool, sub=None, cache={}):
    key = (tool, sub)
    if key not in cache:
        args = [os.path.join(bindir, tool)] + ([sub] if sub else []) + ["--help"]
        try:
            p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=30)
            cache[key] = p.stdout.decode("utf-8", "replace") if p.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            cache[key] = ""
    return cache[key]


def help_blocks(bindir):
    blocks = []
    for tool in tool_names(bindir):
        text = help_text(bindir, tool)
        lines, inex = text.split("\n"), False
        for n, line in enumerate(lines, 1):
            if re.match(r"^Examples?:\s*$", line):
                inex = True
                continue
            if inex and not line.strip():
                inex = False
            if inex:
                if not line.startswith(" "):
                    inex = False
                    continue
                blocks.append(Block("%s --help" % tool, n, line.strip(), "help"))
    return blocks


def logical_lines(text):
    """(first line, last line, command text) with backslash continuations joined
    (line indices from 0)."""
    out, cur, start = [], "", 0
    lines = text.split("\n")
    for k, line in enumerate(lines):
        if not cur:
            start = k
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        out.append((start, k, cur))
        cur = ""
    if cur:
        out.append((start, len(lines) - 1, cur))
    return out


def count_commands(text):
    """The commands of a block: its logical lines (continuations joined) that
    are neither blank nor comments, each pipeline or list counted once."""
    return sum(1 for _, _, line in logical_lines(text) if line.strip() and not line.strip().startswith("#"))


SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", "|&", ";;"}


def option_problems(block, bindir, tools):
    """Options given to our tools that their --help does not know."""
    problems = []
    for k, _, line in logical_lines(block.text):
        try:
            lex = shlex.shlex(line.replace("$(", " ( "), posix=True, punctuation_chars=True)
            lex.whitespace_split = True
            lex.commenters = "#"
            toks = list(lex)
        except ValueError as e:
            problems.append("%s: cannot split into words: %s" % (block.where(k), e))
            continue
        seg = []
        for t in toks + [";"]:
            if t in SEPARATORS:
                problems += check_segment(seg, block, k, bindir, tools)
                seg = []
            else:
                seg.append(t)
    return problems


def check_segment(seg, block, k, bindir, tools):
    out = []
    for i, t in enumerate(seg):
        name = os.path.basename(t)
        if name in tools:
            break
    else:
        return out
    args = seg[i + 1:]
    help_all = help_text(bindir, name)
    if not help_all:
        return ["%s: %s --help failed" % (block.where(k), name)]
    # a command (glow-ckpt import, glow-latent mix): its own --help too
    sub = args[0] if args and re.match(r"^[a-z][a-z-]*$", args[0]) and \
        re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(args[0]), help_all) and \
        help_text(bindir, name, args[0]) else None
    if sub:
        help_all += help_text(bindir, name, sub)
    skip_next = False
    for a in args:
        if skip_next:
            skip_next = False
            continue
        if a in ("<", ">", ">>", "2>", "<<", "<<<", "&>", ">&", "2>&1"):
            skip_next = a not in ("2>&1",)
            continue
        if a == "--":
            break
        if not a.startswith("-") or a == "-" or re.match(r"^-[0-9.]", a) or a == "...":
            continue
        opt = a.split("=", 1)[0]
        if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), help_all):
            out.append("%s: %s%s --help does not know %s (in: %s)" % (
                block.where(k), name, " " + sub if sub else "", opt, " ".join(seg)))
    return out


def syntax_problems(block, bindir, tools):
    p = subprocess.run(["bash", "-n"], input=block.text.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    probs = []
    if p.returncode != 0:
        msg = p.stdout.decode("utf-8", "replace").strip().replace("bash: ", "")
        probs.append("%s: bash -n: %s" % (block.where(), msg))
    return probs + option_problems(block, bindir, tools)


def run_block(block, fixture, bindir, keep):
    work = tempfile.mkdtemp(prefix="doctest.")
    scratch = os.path.join(work, "w")
    shutil.copytree(fixture, scratch, symlinks=True)
    # the repository's folders that commands name (python/, scripts/, test/data ...)
    for name in ("python", "scripts", "pipelines", "test", "tools", "docs"):
        if not os.path.exists(os.path.join(scratch, name)):
            os.symlink(os.path.join(ROOT, name), os.path.join(scratch, name))
    os.makedirs(os.path.join(scratch, "build"), exist_ok=True)
    if not os.path.exists(os.path.join(scratch, "build", "bin")):
        os.symlink(bindir, os.path.join(scratch, "build", "bin"))
    text = block.text
    for old, new in block.subs:
        if old not in text:
            return ["%s: doctest sub: '%s' is not in the block" % (block.where(), old)], work
        text = text.replace(old, new)
    at_file = os.path.join(work, "at")
    pre = ["set -e -o pipefail",
           "trap 'echo \"doctest: exit $? at line $LINENO\" >&2' ERR",
           "trap 'echo $LINENO > %s' DEBUG" % shlex.quote(at_file)]
    pre += block.before
    body_at = len(pre) + 1
    script = "\n".join(pre + text.split("\n") + block.after) + "\n"
    with open(os.path.join(work, "block.sh"), "w") as f:
        f.write(script)
    def cmd_at(script_line):
        k = script_line - body_at
        if k < 0:
            return block.where(), "(before) " + "; ".join(block.before)
        for start, end, cmd in logical_lines(text):
            if start <= k <= end:
                return block.where(start), cmd.strip()
        return block.where(), "(after) " + "; ".join(block.after)

    env = dict(os.environ)
    # configs by name (-c cifar10) are the fixture's tiny ones
    env.update({"PATH": bindir + os.pathsep + env.get("PATH", ""), "HOME": scratch,
                "GLOW_CONFIG_PATH": os.path.join(scratch, "configs"), "GLOW_DOC_TEST": "1"})
    env.update(block.env)
    t0 = time.time()
    p = subprocess.Popen(["bash", os.path.join(work, "block.sh")], cwd=scratch, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        try:
            where, cmd = cmd_at(int(open(at_file).read()))
        except (OSError, ValueError):
            where, cmd = block.where(), "?"
        return ["%s: timed out after %d s: %s" % (where, BLOCK_TIMEOUT, cmd)], work
    err = err.decode("utf-8", "replace")
    block.seconds = time.time() - t0
    probs = []
    m = re.search(r"doctest: exit (\d+) at line (\d+)", err)
    if p.returncode != 0 or m:
        if m:
            where, cmd = cmd_at(int(m.group(2)))
            probs.append("%s: exit %s: %s" % (where, m.group(1), cmd))
        else:
            probs.append("%s: exit %d" % (block.where(), p.returncode))
    bad = [l for l in err.split("\n") if ERROR_RE.search(l) and not l.startswith("doctest: ")]
    if bad and not probs:
        probs.append("%s: printed an error" % block.where())
    if probs:
        tail = [l for l in err.split("\n") if l.strip()][-8:]
        probs += ["    " + l for l in tail]
    return probs, work


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--list", action="store_true", help="list the blocks, run nothing")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders")
    ap.add_argument("--fixture", help="an existing fixture folder (default: made by "
                    "test/doc/fixture.sh, then removed)")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    os.chdir(ROOT)
    bindir = os.path.join(ROOT, a.build, "bin")
    tools = set(tool_names(bindir))
    if not tools:
        print("doctest: no tools in %s (make first)" % bindir, file=sys.stderr)
        return 2
    files = a.files or (["README.md"] + sorted(glob.glob("docs/*.md")) +
                        sorted(glob.glob("man/*.[1-9]") + glob.glob("man/man[1-9]/*.[1-9]") +
                               glob.glob("docs/man/*.[1-9]")))
    blocks = []
    for f in files:
        if f.endswith(".md"):
            blocks += markdown_blocks(os.path.join(ROOT, f), f)
        else:
            blocks += man_blocks(os.path.join(ROOT, f), f)
    if not a.files:
        blocks += help_blocks(bindir)
    if a.list:
        for b in blocks:
            print("%-8s %-32s %s" % ("skip" if b.skip else "run", b.where(),
                                     b.text.split("\n")[0][:70]))
        return 0
    fixture = a.fixture
    if fixture is None and any(not b.skip for b in blocks):
        fixture = tempfile.mkdtemp(prefix="doctest-fixture.")
        t0 = time.time()
        p = subprocess.run([os.path.join(ROOT, "test/doc/fixture.sh"), fixture],
                           env=dict(os.environ, BUILD=a.build), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if p.returncode != 0:
            print(p.stdout.decode("utf-8", "replace")[-4000:])
            print("FAIL doc: test/doc/fixture.sh exited %d" % p.returncode)
            print("doc: 0 passed, 1 failed")
            return 1
        print("doc: fixture in %.1f s" % (time.time() - t0))
    npass = nfail = 0
    counts, cmds = {}, {}
    for b in blocks:
        probs = syntax_problems(b, bindir, tools)
        work = None
        if not probs and not b.skip:
            probs, work = run_block(b, fixture, bindir, a.keep)
        how = "syntax" if b.skip else "run"
        counts[(b.kind, how)] = counts.get((b.kind, how), 0) + 1
        cmds[how] = cmds.get(how, 0) + count_commands(b.text)
        first = b.text.strip().split("\n")[0][:60]
        if probs:
            nfail += 1
            print("FAIL %s [%s] %s" % (b.where(), how, first))
            for pr in probs:
                print("  " + pr)
            if work and a.keep:
                print("  (kept: %s)" % work)
        else:
            npass += 1
            extra = " (%.1f s)" % b.seconds if getattr(b, "seconds", None) else ""
            print("ok   %s [%s%s] %s" % (b.where(), how, extra, first))
        if work and not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    if fixture and not a.keep and not a.fixture:
        shutil.rmtree(fixture, ignore_errors=True)
    # the totals, then per source: "run" are the blocks declared to run (a
    # failed syntax check stops one before it runs, and counts as failed)
    kinds, tr, ts = [], 0, 0
    for kind, label in (("md", "Markdown blocks"), ("help", "--help examples"),
                        ("man", "man page examples")):
        r, s = counts.get((kind, "run"), 0), counts.get((kind, "syntax"), 0)
        tr, ts = tr + r, ts + s
        kinds.append("%s: %d run, %d syntax-checked only" % (label, r, s))
    print("doc: %d run, %d syntax-checked only (%s)" % (tr, ts, "; ".join(kinds)))
    print("doc: commands: %d run, %d syntax-checked only" % (cmds.get("run", 0), cmds.get("syntax", 0)))
    print("doc: %d passed, %d failed" % (npass, nfail))
    return 0 if nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
