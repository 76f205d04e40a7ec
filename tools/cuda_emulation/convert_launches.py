# Rewrites the kernel launches of a .cu file (kernel<<<grid, block, smem, stream>>>(args);)
# into emu::launch(dim3(grid), dim3(block), [=] { kernel(args); }) for the CPU emulation.
# Usage: convert_launches.py in.cu out.cpp
import re, sys
src = open(sys.argv[1]).read()
out = []
i = 0
while True:
    j = src.find('<<<', i)
    if j < 0:
        out.append(src[i:]); break
    # kernel name (with optional template args) backwards
    k = j
    if src[k-1] == '>':
        depth = 0
        while True:
            k -= 1
            if src[k] == '>': depth += 1
            elif src[k] == '<':
                depth -= 1
                if depth == 0: break
    m = re.search(r'[A-Za-z_][A-Za-z_0-9]*$', src[:k])
    name_start = m.start()
    name = src[name_start:j]
    e = src.find('>>>', j)
    cfg = src[j+3:e]
    # split cfg at top-level commas
    parts, depth, cur = [], 0, ''
    for ch in cfg:
        if ch in '(<[': depth += 1
        if ch in ')>]': depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur); cur = ''
        else:
            cur += ch
    parts.append(cur)
    assert src[e+3] == '(', src[e:e+20]
    depth, p = 0, e+3
    while True:
        if src[p] == '(': depth += 1
        elif src[p] == ')':
            depth -= 1
            if depth == 0: break
        p += 1
    args = src[e+4:p]
    out.append(src[i:name_start])
    out.append('emu::launch(dim3(%s), dim3(%s), [=] { %s(%s); })' % (parts[0].strip(), parts[1].strip(), name, args))
    i = p + 1
open(sys.argv[2], 'w').write(''.join(out))
