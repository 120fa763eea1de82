#!/usr/bin/env python3
"""The library's layers, checked against the code.

libcommon/README.md draws the layers as a fenced block under "## Layers", top to
bottom, one line per layer: the folders of that layer, then what they hold. A file
may include and call only files of its own folder or of the layers below its own;
folders named on one line (cpu/ cuda/) may not use each other. Beyond the layering,
no two files may depend on each other in a loop: a file depends on the headers it
includes, and a source file on the source files whose functions it calls (read
from the object files with nm).

Usage: test/arch/layers.py [BUILD_DIR]     prints "layers: N passed, M failed"
"""
import os
import re
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'build')
passed = failed = 0


def check(ok, msg):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print('FAIL ' + msg)


def read_layers():
    text = open(os.path.join(ROOT, 'libcommon', 'README.md')).read()
    m = re.search(r'^## Layers\b.*?^```[^\n]*\n(.*?)^```', text, re.S | re.M)
    if not m:
        sys.exit('layers: libcommon/README.md has no "## Layers" block')
    layers = []
    for line in m.group(1).splitlines():
        folders = []
        for word in line.split():
            if not word.endswith('/'):
                break
            folders.append(word.rstrip('/'))
        if folders:
            layers.append(folders)
    return layers


def folder_of(path):
    """libcommon/model/x.c -> model; cpu/x.c -> cpu; tools/x.c -> tools."""
    rel = os.path.relpath(path, ROOT).split(os.sep)
    if rel[0] == 'libcommon' and len(rel) == 3:
        return rel[1]
    return rel[0]


def sources():
    out = []
    for top in ('libcommon', 'cpu', 'cuda', 'tools'):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            out += [os.path.join(dirpath, f) for f in sorted(files)
                    if f.endswith(('.c', '.h', '.cu', '.cuh'))]
    return sorted(out)


def resolve(including, name):
    for base in (os.path.dirname(including), os.path.join(ROOT, 'libcommon'), ROOT):
        p = os.path.normpath(os.path.join(base, name))
        if os.path.exists(p):
            return p
    return None


def unit(path):
    return os.path.relpath(path, ROOT)


def main():
    layers = read_layers()
    rank = {}
    for i, folders in enumerate(layers):
        for f in folders:
            rank[f] = i  # 0 is the top
    files = sources()
    deps = {}  # unit -> {unit: why}

    def add(a, b, why):
        if a != b:
            deps.setdefault(a, {}).setdefault(b, why)

    # every folder is drawn
    for f in sorted({folder_of(p) for p in files}):
        check(f in rank, '%s/: not drawn in libcommon/README.md' % f)

    # includes
    inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    for p in files:
        src = open(p, errors='replace').read()
        for name in inc.findall(src):
            q = resolve(p, name)
            if q is None or not q.startswith(ROOT):
                continue
            a, b = folder_of(p), folder_of(q)
            rel = os.path.relpath(p, ROOT)
            if a in rank and b in rank and a != b:
                check(rank[b] > rank[a],
                      '%s includes %s: %s/ is not below %s/' % (rel, name, b, a))
            add(unit(p), unit(q), 'includes %s' % name)

    # calls, from the objects' symbol tables
    objs = {}
    for p in files:
        if p.endswith(('.c', '.cu')):
            o = os.path.join(BUILD, 'obj', os.path.relpath(p, ROOT))
            o = os.path.splitext(o)[0] + '.o'  # the object of p
            if os.path.exists(o):
                objs[unit(p)] = o
    defined, undefined = {}, {}
    for u, o in objs.items():
        out = subprocess.run(['nm', '--defined-only', '-g', o], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in 'TDBRVW':
                defined.setdefault(parts[2], u)
        out = subprocess.run(['nm', '-u', o], capture_output=True, text=True).stdout
        undefined[u] = [l.split()[-1] for l in out.splitlines() if l.strip()]
    for u, syms in undefined.items():
        for s in syms:
            v = defined.get(s)
            if v is None or v == u:
                continue
            a = folder_of(os.path.join(ROOT, u))
            b = folder_of(os.path.join(ROOT, v))
            if a in rank and b in rank and a != b:
                check(rank[b] > rank[a], '%s calls %s of %s: %s/ is not below %s/' % (u, s, v, b, a))
            add(u, v, 'calls %s' % s)
    check(len(objs) > 10, 'object files found in %s (build first)' % BUILD)

    # loops between units (Tarjan's strongly connected components)
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps.get(v, {})):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(set(deps) | {w for d in deps.values() for w in d}):
        if v not in index:
            strong(v)
    for comp in sccs:
        if len(comp) > 1:
            why = '; '.join('%s %s' % (a, deps[a][b]) for a in comp for b in comp
                            if b in deps.get(a, {}))
            check(False, 'a loop between %s (%s)' % (', '.join(comp), why))
    check(True, 'no loop among %d files' % len(deps))
    print('layers: %d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


sys.exit(main())
