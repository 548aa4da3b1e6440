#!/usr/bin/env python3
"""The tree's layers, checked (README.md "Layout"):

1. A module uses only the public headers of the modules below it:
     base < transport, inject < migrate, remote, gossip, placement < runtime, bench, tests
   (a module's own tests may use what the module may use, and its own private headers).
2. No file includes another module's private header (a quoted include resolves inside the
   including file's own module, or is a public mos/ header).
3. mosd's files call each other in layers: each calls mosd_* functions defined only in itself
   or in the files before it, in the order runtime/mosd/mosd.h lists them.

Prints one line per violation and exits 1, or prints a summary and exits 0.
Usage: check_layers.py SOURCE_DIR
"""
import os
import re
import sys

ALLOWED = {
    'base': set(),
    'transport': {'base'},
    'inject': {'base'},
    'migrate': {'base', 'transport', 'inject'},
    'remote': {'base', 'inject'},
    'gossip': {'base'},
    'placement': {'base'},
}
TOP = {'runtime', 'bench', 'tests'}  # may use every module's public headers
SOURCE_EXT = ('.c', '.h')
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root, folder):
    for dirpath, dirnames, files in os.walk(os.path.join(root, folder)):
        dirnames[:] = [d for d in dirnames if not d.startswith('build')]
        for f in files:
            if f.endswith(SOURCE_EXT):
                yield os.path.join(dirpath, f)


def public_headers(root):
    """mos/NAME.h -> the module that owns it."""
    owner = {}
    for module in ALLOWED:
        inc = os.path.join(root, module, 'include', 'mos')
        if os.path.isdir(inc):
            for f in os.listdir(inc):
                owner['mos/' + f] = module
    return owner


def own_header(root, module, inc):
    for dirpath, dirnames, files in os.walk(os.path.join(root, module)):
        if os.path.basename(inc) in files and os.path.join(dirpath, inc).endswith(inc):
            return os.path.join(dirpath, os.path.basename(inc))
    return None


def check_includes(root, problems):
    owner = public_headers(root)
    checked = 0
    for module in list(ALLOWED) + sorted(TOP):
        for path in sources(root, module):
            checked += 1
            rel = os.path.relpath(path, root)
            text = open(path, encoding='utf-8', errors='replace').read()
            for inc in INCLUDE.findall(text):
                if inc in owner:
                    used = owner[inc]
                    if module in TOP or used == module or used in ALLOWED[module]:
                        continue
                    problems.append(f'{rel}: {module} may not use {used} ({inc})')
                    continue
                target = os.path.normpath(os.path.join(os.path.dirname(path), inc))
                if not os.path.exists(target):
                    # a private header found through one of the module's own include dirs
                    target = own_header(root, module, inc) or target
                if not os.path.exists(target):
                    problems.append(f'{rel}: "{inc}" is neither a public header nor its own')
                    continue
                target_module = os.path.relpath(target, root).split(os.sep)[0]
                if target_module != module:
                    problems.append(f'{rel}: includes {target_module}\'s private "{inc}"')
    return checked


def mosd_order(root):
    header = open(os.path.join(root, 'runtime', 'mosd', 'mosd.h')).read()
    block = header[:header.index('#ifndef')]
    return re.findall(r'^ \*\s+(\w+\.c)\s', block, re.M)


def strip_comments_and_strings(text):
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'//[^\n]*', ' ', text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def check_mosd_calls(root, problems):
    order = mosd_order(root)
    folder = os.path.join(root, 'runtime', 'mosd')
    present = sorted(f for f in os.listdir(folder) if f.endswith('.c'))
    if sorted(order) != present:
        problems.append(f'runtime/mosd/mosd.h lists {order}, the folder holds {present}')
        return 0
    defined = {}
    bodies = {}
    for f in order:
        text = strip_comments_and_strings(open(os.path.join(folder, f)).read())
        bodies[f] = text
        for name in re.findall(r'^[a-z][^;{()]*?\b(mosd_\w+)\s*\([^;]*?\)\s*\{', text, re.M | re.S):
            defined[name] = f
    calls = 0
    for i, f in enumerate(order):
        below = set(order[:i + 1])
        for name in sorted(set(re.findall(r'\b(mosd_\w+)\s*\(', bodies[f]))):
            where = defined.get(name)
            if where is None:
                continue
            calls += 1
            if where not in below:
                problems.append(f'runtime/mosd/{f} calls {name} of {where}, a file above it')
    return calls


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else '.'
    problems = []
    files = check_includes(root, problems)
    calls = check_mosd_calls(root, problems)
    for p in problems:
        print('layers:', p)
    if problems:
        return 1
    print(f'layers: {files} files, {calls} mosd calls, all in order')
    return 0


if __name__ == '__main__':
    sys.exit(main())
