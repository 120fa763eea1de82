#!/usr/bin/env python3
"""CUDA source to C++ for the CUDA emulator: rewrites the only two constructs of
CUDA C++ that a C++ compiler cannot parse, and copies everything else unchanged
(line numbers kept, a #line directive names the original file):

  kernel<<<grid, block[, shmem[, stream]]>>>(args)
      -> ::emu::launch(kernel, "kernel", __FILE__, __LINE__, grid, block[, ...])(args)
     (inside a #define whose parameter is the kernel, the name is #kernel)
  __shared__ T name[dims];
      -> static char emu_shared_name; auto &name = ::emu::shared<T[dims]>(&emu_shared_name, "name");
  extern __shared__ T name[];
      -> T *name = ::emu::extern_shared<T>("name");

Usage: rewrite.py OUTDIR FILE...   (each FILE to OUTDIR/<its base name>, written only
when its text changes, so that make rebuilds only what changed)
"""
import os
import re
import sys

IDENT = re.compile(r'[A-Za-z_]\w*')


def fail(path, text, pos, msg):
    line = text.count('\n', 0, pos) + 1
    sys.exit('%s:%d: rewrite.py: %s' % (path, line, msg))


def code_mask(text):
    """A list: True where text[i] is code (not in a comment, string or char literal)."""
    mask = [True] * len(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            for k in range(i, j):
                mask[k] = False
            i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                mask[k] = False
            i = j
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            j += 1
            for k in range(i, min(j, n)):
                mask[k] = False
            i = j
        else:
            i += 1
    return mask


def skip_space_back(text, i):
    while i >= 0 and (text[i].isspace() or (text[i] == '\\' and text[i + 1:i + 2] == '\n')):
        i -= 1
    return i


def match_back(text, mask, i, open_c, close_c):
    """text[i] is close_c: the index of its matching open_c."""
    depth = 0
    while i >= 0:
        if mask[i]:
            if text[i] == close_c:
                depth += 1
            elif text[i] == open_c:
                depth -= 1
                if depth == 0:
                    return i
        i -= 1
    return -1


def kernel_start(path, text, mask, end):
    """The start of the kernel expression that ends just before text[end]."""
    i = skip_space_back(text, end - 1)
    if i < 0:
        fail(path, text, end, 'no kernel before <<<')
    if text[i] == ')':
        j = match_back(text, mask, i, '(', ')')
        if j < 0:
            fail(path, text, end, 'unbalanced parentheses before <<<')
        return j
    if text[i] == '>':  # template arguments: k<A, B>
        j = match_back(text, mask, i, '<', '>')
        if j < 0:
            fail(path, text, end, 'unbalanced template arguments before <<<')
        i = skip_space_back(text, j - 1)
    if not (text[i].isalnum() or text[i] == '_'):
        fail(path, text, end, 'cannot find the kernel name before <<<')
    while True:  # an identifier, possibly qualified (ns::k)
        while i >= 0 and (text[i].isalnum() or text[i] == '_'):
            i -= 1
        k = skip_space_back(text, i)
        if k >= 1 and text[k] == ':' and text[k - 1] == ':':
            i = skip_space_back(text, k - 2)
            continue
        return i + 1


def config_end(path, text, mask, start):
    """The index of the >>> that closes the <<< ending at start."""
    depth, i, n = 0, start, len(text)
    while i < n:
        if mask[i]:
            c = text[i]
            if c in '([{':
                depth += 1
            elif c in ')]}':
                depth -= 1
            elif depth == 0 and text.startswith('>>>', i):
                return i
        i += 1
    fail(path, text, start, '<<< without >>>')


def split_top(s):
    parts, depth, cur = [], 0, ''
    for c in s:
        if c in '([{':
            depth += 1
        elif c in ')]}':
            depth -= 1
        if c == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += c
    parts.append(cur)
    return parts


def macro_params(text, pos):
    """The parameter names of the #define (function-like) that holds pos, or None."""
    ls = text.rfind('\n', 0, pos) + 1
    # walk back over continued lines to the logical line's start
    while ls >= 2 and text[ls - 2] == '\\':
        ls = text.rfind('\n', 0, ls - 2) + 1
    m = re.match(r'\s*#\s*define\s+\w+\(([^)]*)\)', text[ls:])
    if not m:
        return None
    return [p.strip() for p in m.group(1).split(',')]


def c_string(s):
    s = ' '.join(s.replace('\\\n', ' ').split())
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def rewrite_launches(path, text):
    out, pos = [], 0
    while True:
        mask = code_mask(text)
        i = -1
        start = pos
        while True:
            i = text.find('<<<', start)
            if i < 0 or mask[i]:
                break
            start = i + 3
        if i < 0:
            break
        ks = kernel_start(path, text, mask, i)
        kernel = text[ks:i].rstrip()
        ce = config_end(path, text, mask, i + 3)
        config = text[i + 3:ce]
        nargs = len(split_top(config))
        if not 2 <= nargs <= 4:
            fail(path, text, i, 'a launch takes 2 to 4 configuration values, not %d' % nargs)
        after = ce + 3
        j = after
        while j < len(text) and text[j] in ' \t':
            j += 1
        if text[j:j + 1] != '(':
            fail(path, text, ce, 'a launch >>> must be followed by the arguments')
        params = macro_params(text, i)
        name = '#' + kernel.strip() if params and kernel.strip() in params else c_string(kernel)
        repl = '::emu::launch(%s, %s, __FILE__, __LINE__, %s)' % (kernel, name, config)
        text = text[:ks] + repl + text[after:]
        pos = ks + len(repl)
    return text


SHARED = re.compile(
    r'(?P<ext>\bextern\s+)?\b__shared__\s+(?P<type>[^;=\[\]{}()]+?)\s*\b(?P<name>[A-Za-z_]\w*)'
    r'\s*(?P<dims>(?:\[[^\]]*\]\s*)*);')


def rewrite_shared(path, text):
    mask = code_mask(text)

    def repl(m):
        if not mask[m.start()]:
            return m.group(0)
        typ, name, dims = ' '.join(m.group('type').split()), m.group('name'), m.group('dims')
        dims = ''.join(dims.split())
        if '\n' in m.group(0):
            fail(path, text, m.start(), '__shared__ declaration over several lines')
        if m.group('ext'):
            if dims != '[]':
                fail(path, text, m.start(), 'extern __shared__ must be an unsized array')
            return '%s *%s = ::emu::extern_shared<%s>("%s");' % (typ, name, typ, name)
        if '[]' in dims:
            fail(path, text, m.start(), 'unsized __shared__ array without extern')
        return ('static char emu_shared_%s; auto &%s = ::emu::shared<%s%s>(&emu_shared_%s, '
                '"%s");' % (name, name, typ, dims, name, name))

    text = SHARED.sub(repl, text)
    mask = code_mask(text)
    for m in re.finditer(r'\b__shared__\b', text):
        if mask[m.start()]:
            fail(path, text, m.start(), '__shared__ in a form rewrite.py does not handle '
                 '(one declaration per statement, no initializer)')
    return text


def rewrite(path, text, shown):
    text = rewrite_launches(path, text)
    text = rewrite_shared(path, text)
    return '#line 1 "%s"\n%s' % (shown, text)


def main():
    if len(sys.argv) < 3:
        sys.exit('usage: rewrite.py OUTDIR FILE...')
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for path in sys.argv[2:]:
        with open(path) as f:
            text = f.read()
        new = rewrite(path, text, path)
        dst = os.path.join(outdir, os.path.basename(path))
        old = None
        if os.path.exists(dst):
            with open(dst) as f:
                old = f.read()
        if old != new:
            tmp = dst + '.tmp'
            with open(tmp, 'w') as f:
                f.write(new)
            os.replace(tmp, dst)


if __name__ == '__main__':
    main()
