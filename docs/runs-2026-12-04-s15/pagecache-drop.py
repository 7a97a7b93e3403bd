#!/usr/bin/env python3
# As pagecache-touch.py, but like a log that keeps only its tail cached:
# fdatasync every 1 MiB and, every 16 MiB, POSIX_FADV_DONTNEED on what is
# older than the last WINDOW_MiB (default 32). Per 256 MiB: wall, system
# CPU, and the write part alone (wall of the pwrites).
#   pagecache-drop.py DIR GB [WINDOW_MiB]
import os, sys, time
d, gb = sys.argv[1], float(sys.argv[2])
window = (int(sys.argv[3]) if len(sys.argv) > 3 else 32) << 20
path = os.path.join(d, "drop.dat")
buf = os.urandom(65536)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
chunk, off, dropped = 256 << 20, 0, 0
total = int(gb * (1 << 30))
print("written_MiB wall_ms sys_ms pwrite_ms cached_MiB")
while off < total:
    t0, c0, wt = time.monotonic(), os.times(), 0.0
    end = off + chunk
    while off < end:
        w0 = time.monotonic(); os.pwrite(fd, buf, off); wt += time.monotonic() - w0
        off += len(buf)
        if off % (1 << 20) == 0:
            os.fdatasync(fd)
        if window >= 0 and off % (16 << 20) == 0 and off - window > dropped:
            os.posix_fadvise(fd, dropped, off - window - dropped, os.POSIX_FADV_DONTNEED)
            dropped = off - window
    t1, c1 = time.monotonic(), os.times()
    cached = int([l for l in open("/proc/meminfo") if l.startswith("Cached")][0].split()[1]) // 1024
    print(f"{off >> 20} {(t1-t0)*1000:.0f} {(c1.system-c0.system)*1000:.0f} {wt*1000:.0f} {cached}", flush=True)
os.close(fd)
os.unlink(path)
