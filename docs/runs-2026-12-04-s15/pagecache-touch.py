#!/usr/bin/env python3
# Writes GB gigabytes to a new file in 64 KiB pwrites (no fsync) and prints,
# per 256 MiB, the wall and system CPU time of the writes and the guest's
# page-reporting counter (KiB of free memory handed back to the host).
#   pagecache-touch.py DIR GB [keep]
import os, sys, time
d, gb = sys.argv[1], float(sys.argv[2])
path = os.path.join(d, "touch.dat")
rk = "/sys/module/page_reporting/parameters/reported_kib"
def reported():
    try: return int(open(rk).read())
    except OSError: return -1
buf = os.urandom(65536)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
chunk = 256 << 20
off = 0
total = int(gb * (1 << 30))
print("written_MiB wall_ms sys_ms user_ms reported_MiB_delta free_MiB")
while off < total:
    t0, c0, r0 = time.monotonic(), os.times(), reported()
    end = off + chunk
    while off < end:
        os.pwrite(fd, buf, off); off += len(buf)
    t1, c1, r1 = time.monotonic(), os.times(), reported()
    free = int([l for l in open("/proc/meminfo") if l.startswith("MemFree")][0].split()[1]) // 1024
    print(f"{off >> 20} {(t1-t0)*1000:.0f} {(c1.system-c0.system)*1000:.0f} {(c1.user-c0.user)*1000:.0f} {(r1-r0)//1024} {free}", flush=True)
os.close(fd)
if len(sys.argv) < 4: os.unlink(path)
