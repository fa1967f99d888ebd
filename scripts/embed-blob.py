#!/usr/bin/env python3
"""Write an assembler file that embeds a binary (the guest init) into the host
program, so ctr-jailer is one self-contained file: embed-blob.py SYMBOL IN OUT."""
import os
import sys

symbol, src, out = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
with open(out, "w") as f:
    f.write(f"""\t.section .rodata
\t.global {symbol}
\t.global {symbol}_end
\t.balign 16
{symbol}:
\t.incbin "{src}"
{symbol}_end:
\t.section .note.GNU-stack,"",@progbits
""")
