"""fuxfs: seed 000's FUSE client -- a filesystem whose files live in NMS blocks.

    python -m agents.workloads.nms.fuxfs MOUNTPOINT --server HOST:PORT --key-file F
        --ca-file LAB-CA [--server-name NAME] [--server-file PATH] [--volume NAME]
        [--client-id ID] [--retry-deadline S] [--cache-blocks N] [--debug]

It runs in the foreground until unmounted (``fusermount3 -u MOUNTPOINT``, SIGTERM or SIGINT);
every dirty block and the metadata are written to the NMS before it exits.

Layout on the NMS (all integers big-endian, block size from the server, 8 KiB by default):

* **Superblock.** The NMS hands out random block ids, so there is no "block 0"; instead the
  superblock is allocated with a *deterministic* ALLOC token, SHA-256("fuxfs superblock v1" |
  volume name)[:16]. The server deduplicates ALLOC tokens and keeps them beside the blocks in its
  data directory, so after a migration (stop/commit/push/pull/run, or a restart on the same data
  directory) the same token still names the same block, and any client with the key finds the
  volume again. A freshly allocated (all-zero) superblock means "empty volume"; it is formatted.
  Contents: ``"FUXFSv1\\0" | u32 block size | u64 generation | u64 next inode | u64 metadata
  length | u32 metadata blocks | SHA-256(metadata) | u64 metadata block id ...``.
* **Metadata**: ``u32 count`` then per file ``u64 ino | u32 mode | u64 size | u64 mtime ns |
  u64 ctime ns | u32 nblocks | u16 name length | name (UTF-8) | u64 block id * nblocks``; block
  id 0 is a hole (reads as zeros; the server never hands out 0). It is spread over as many
  blocks as it needs.
* **Data**: each file is a list of whole NMS blocks.

Consistency (copy-on-write metadata): a commit writes the dirty data blocks, writes the
metadata into *newly allocated* blocks, then overwrites the superblock (one block WRITE, which
the server makes atomic with a rename), and only then frees the previous metadata blocks and the
data blocks that unlink/truncate/rename released. Whatever the superblock names on the NMS is
therefore always complete; a crash between the steps can leak blocks but never corrupt a file.
Commits happen on create, unlink, rename, truncate, chmod, utimens, and on flush (close), fsync,
release and unmount when something changed; writes are buffered in a bounded block cache (write
back on eviction, on flush/fsync and at unmount), so an unaligned 4 KiB write does not cost a
read-modify-write round trip each time.

Namespace: flat (files in the root directory only; ``mkdir`` is not supported), regular files,
names up to 255 bytes. Ops: create, open, read, write (partial, unaligned, appending, sparse),
truncate/ftruncate, unlink (an open file keeps its blocks until its last release), rename
(replacing a target), readdir, getattr, chmod, utimens, statfs (the NMS's block counts), flush,
fsync, release.

Reconnecting: ``NmsClient`` re-resolves the server and retries every request (all are
idempotent) until ``--retry-deadline``; a FUSE call that meets a migration simply blocks until
the NMS answers at its new address. ``--server-file`` names a file holding ``HOST:PORT`` that is
re-read at each reconnect: the SMF (seed 000's SMF_THREAD) or an operator rewrites it after a
migration and the mounted filesystem carries on without a remount. A wrong key is refused before
anything is mounted (exit status 1).

Binding: **mfusepy** (PyPI ``mfusepy``), the maintained successor of fusepy. It is pure Python
over ctypes, so it needs no compiler or ``libfuse3-dev`` -- only the ``fuse3`` Debian package
(``libfuse3.so.3`` and ``fusermount3``) -- and it works with libfuse 3 and 2, on x86 and on the
Jetsons' arm64 alike. Its high-level, path-based API matches a small flat namespace exactly.
pyfuse3 was the alternative: faster (low-level API, trio), but it compiles against libfuse3-dev
and would force an async design on a client whose NMS library is synchronous; fusepy itself has
been unmaintained since 2018 and knows only libfuse 2. mfusepy is imported only when mounting,
so `FuxVolume` (all the filesystem logic) is usable and testable without libfuse.

Modules: `layout` (the on-NMS format: superblock, metadata, inodes), `device` (what fuxfs needs
from the NMS, and `NmsDevice` over an `NmsClient`), `volume` (`FuxVolume`: namespace, data,
block cache, commits), `fuse` (the mfusepy adapter and `mount`), `cli` (the command above;
``__main__`` runs it).
"""
