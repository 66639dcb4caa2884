/*
 * posix.c: the C tests of shmop.c for what only its System V branch does:
 * the kernel's own view of what shmop_open made, key 0 (IPC_PRIVATE),
 * delete freeing the key, shmdt errors, segments over 4 GiB (SHM_NORESERVE),
 * a segment in unreserved huge pages made elsewhere (an error, not SIGBUS),
 * the failure stages shmget/shmctl/shmat as seen by an unprivileged child,
 * the created-or-found loop of shmop__get under races (fault doubles), and
 * the introspection functions (shmop_find/stat/remove/ftok).
 */
#include "shmop-under-test.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SHM_DEST
#define SHM_DEST 01000 /* Linux: marked for deletion */
#endif
#define NORESERVE 010000 /* SHM_NORESERVE, passed through perms as PHP does */

static const char *const unset = "(unset)";
static const char *ignored_call;

/* The kernel's view, asked directly (not through shmop_stat). */
static int kernel_stat(int id, struct shmid_ds *ds) {
  return shmctl(id, IPC_STAT, ds) == 0 ? 0 : -errno;
}

static void drop(int32_t key) {
  int id = probe_key(key);
  if (id >= 0) shmctl(id, IPC_RMID, NULL);
}

static int create(shmop_t *seg, int32_t key, int perms, int64_t size) {
  const char *call = unset;
  int rc = shmop_open(seg, key, 'n', perms, size, &call);
  if (rc != 0) ok(0, "create key 0x%08x: %s (%s)", (unsigned)key, shmop_strerror(rc), call);
  return rc == 0 ? 0 : -1;
}

static void test_kernel_view(void) {
  int32_t key = test_key(1);
  shmop_t seg, again;
  struct shmid_ds ds;
  mode_t old_mask = umask(022);

  tap_group("what the kernel sees of shmop_open");
  if (create(&seg, key, 0640 | 0002, 12289) != 0) {
    umask(old_mask);
    return;
  }
  ok(kernel_stat(seg.id, &ds) == 0, "IPC_STAT of the new segment");
  is_int(ds.shm_perm.mode & 0777, 0642, "permissions 0642 exactly: no umask (022) applied");
  is_u64(ds.shm_segsz, 12289, "size 12289 exactly: not rounded to pages");
  is_u64(seg.size, 12289, "seg.size is the kernel's");
  is_int(probe_key(key), seg.id, "seg.id is the key's shmid");
  is_int(ds.shm_nattch, 1, "one attachment");
  if (is_int(shmop_open(&again, key, 'c', 0600, 1, &ignored_call), 0, "'c' with 0600 on it")) {
    kernel_stat(seg.id, &ds);
    is_int(ds.shm_perm.mode & 0777, 0642, "... leaves its permissions as they were");
    shmop_close(&again);
  }
  shmop_delete(&seg);
  shmop_close(&seg);
  umask(old_mask);
  drop(key);
}

static void test_ipc_private(void) {
  shmop_t one, two, three;
  struct shmid_ds ds;
  const char *call;
  uint64_t written;

  tap_group("key 0 (IPC_PRIVATE)");
  if (!is_int(shmop_open(&one, 0, 'c', 0600, 64, &ignored_call), 0, "'c' with key 0 creates"))
    return;
  is_int(shmop_delete(&one), 0, "... (deleted at once: nothing else can reach it)");
  is_int(one.key, 0, "... keeps key 0");
  if (is_int(shmop_open(&two, 0, 'c', 0600, 64, &ignored_call), 0, "'c' with key 0 again")) {
    shmop_delete(&two);
    ok(two.id != one.id, "... makes another segment");
    shmop_write(&one, "one", 3, 0, &written);
    ok(two.addr[0] == 0, "... that does not share the first's data");
    shmop_close(&two);
  }
  if (is_int(shmop_open(&three, 0, 'n', 0600, 64, &ignored_call), 0,
             "'n' with key 0 creates too")) {
    shmop_delete(&three);
    ok(three.id != one.id, "... a segment of its own");
    shmop_close(&three);
  }
  call = unset;
  is_int(shmop_open(&two, 0, 'a', 0, 0, &call), -EINVAL,
         "'a' with key 0: -EINVAL (a size-0 creation)");
  is_str(call, "shmget", "... from shmget");
  call = unset;
  is_int(shmop_open(&two, 0, 'w', 0, 0, &call), -EINVAL, "'w' with key 0: -EINVAL");
  ok(kernel_stat(one.id, &ds) == 0 && (ds.shm_perm.mode & SHM_DEST),
     "a deleted private segment is marked");
  shmop_close(&one);
  ok(kernel_stat(one.id, &ds) != 0, "... and gone after its last detach");
}

static void test_delete_frees_key(void) {
  int32_t key = test_key(2);
  shmop_t seg, ro, fresh;
  struct shmid_ds ds;
  uint64_t written;
  const char *call = unset;

  tap_group("shmop_delete frees the key at once");
  if (create(&seg, key, 0600, 64) != 0) return;
  shmop_write(&seg, "old", 3, 0, &written);
  if (!is_int(shmop_open(&ro, key, 'a', 0, 0, &ignored_call), 0, "an 'a' handle")) {
    shmop_delete(&seg);
    shmop_close(&seg);
    return;
  }
  is_int(shmop_delete(&ro), 0, "... deletes: IPC_RMID needs ownership, not write access");
  ok(kernel_stat(seg.id, &ds) == 0 && (ds.shm_perm.mode & SHM_DEST),
     "the segment is marked for deletion");
  is_int(probe_key(key), -ENOENT, "the key is free at once");
  is_int(shmop_open(&fresh, key, 'w', 0, 0, &call), -ENOENT, "'w' on it: -ENOENT");
  if (is_int(shmop_open(&fresh, key, 'c', 0600, 64, &ignored_call), 0, "'c' on it creates anew")) {
    ok(fresh.id != seg.id && fresh.addr[0] == 0, "... a new, zero-filled segment");
    ok(memcmp(seg.addr, "old", 3) == 0 && memcmp(ro.addr, "old", 3) == 0,
       "... while the old mappings keep the old data");
    shmop_delete(&fresh);
    shmop_close(&fresh);
  }
  is_int(shmop_delete(&seg), 0, "deleting a marked segment again: 0");
  shmop_close(&ro);
  shmop_close(&seg);
  drop(key);
}

static void test_close_detach(void) {
  int32_t key = test_key(3);
  shmop_t seg, other;
  int id;

  tap_group("shmop_close detaches");
  if (create(&seg, key, 0600, 64) != 0) return;
  id = seg.id;
  if (shmop_open(&other, key, 'w', 0, 0, &ignored_call) == 0) {
    is_int(probe_nattch(id), 2, "two mappings: 2 attachments");
    is_int(shmop_close(&other), 0, "close: 0");
    is_int(probe_nattch(id), 1, "... 1 attachment left");
    is_int(shmop_close(&other), -EINVAL, "closing it again: -EINVAL from shmdt");
  }
  is_int(shmop_delete(&seg), 0, "delete");
  is_int(shmop_close(&seg), 0, "close of the last mapping");
  ok(probe_nattch(id) < 0, "... destroys the deleted segment");
  drop(key);
}

/* The read-write mapping that section waiters attached read-only count themselves through. */
static void test_writable(void) {
  int32_t key = test_key(3);
  shmop_t seg, ro;
  unsigned char *writable;
  int id;

  tap_group("shmop_writable");
  if (create(&seg, key, 0600, 64) != 0) return;
  id = seg.id;
  ok(shmop_writable(&seg) == seg.addr, "a read-write segment: its own mapping");
  if (shmop_open(&ro, key, 'a', 0, 0, &ignored_call) == 0) {
    is_int(probe_nattch(id), 2, "read-only too: 2 attachments");
    writable = shmop_writable(&ro);
    ok(writable && writable != ro.addr, "a read-only one: a second mapping");
    ok(shmop_writable(&ro) == writable, "... made once");
    is_int(probe_nattch(id), 3, "... 3 attachments");
    if (writable) writable[7] = 42;
    is_int(seg.addr[7], 42, "... of the same memory");
    is_int(shmop_close(&ro), 0, "close: 0");
    is_int(probe_nattch(id), 1, "... detaches both");
  }
  is_int(shmop_delete(&seg), 0, "delete");
  shmop_close(&seg);
  drop(key);
}

static void test_hugetlb_noreserve(void) {
  int32_t key = test_key(5);
  shmop_t seg;
  const char *call = unset;
  tap_group("SHM_HUGETLB with SHM_NORESERVE (SIGBUS at first touch when no huge page is free)");
  is_int(shmop_open(&seg, key, 'c', 0600 | SHM_HUGETLB | SHM_NORESERVE, 4096, &call), SHMOP_EUNSAFE,
         "'c' with perms|SHM_HUGETLB|SHM_NORESERVE: SHMOP_EUNSAFE");
  is_int(shmop_open(&seg, key, 'n', -1, 4096, &call), SHMOP_EUNSAFE,
         "'n' with perms -1 (every bit): SHMOP_EUNSAFE");
  ok(probe_key(key) < 0, "... and no segment was made");
  drop(key);
}

/* Free huge pages and their size (/proc/meminfo); 0 when unknown. */
static uint64_t huge_pages(uint64_t *page) {
  char line[128];
  unsigned long long free_pages = 0, kb = 0;
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) {
    sscanf(line, "HugePages_Free: %llu", &free_pages);
    sscanf(line, "Hugepagesize: %llu kB", &kb);
  }
  fclose(f);
  *page = (uint64_t)kb * 1024;
  return (uint64_t)free_pages;
}

/* Made elsewhere (PHP passes SHM_HUGETLB | SHM_NORESERVE on), larger than the
   free huge pages: attaching populates it first, and fails instead of a SIGBUS. */
static void test_hugetlb_made_elsewhere(void) {
  int32_t key = test_key(6);
  uint64_t page = 0, free_pages = huge_pages(&page), size = (free_pages + 1) * page;
  shmop_t seg;
  struct shmid_ds ds;
  const char *call = unset;
  int id;
  tap_group("a segment in unreserved huge pages, made elsewhere, with too few free");
  id = test_shmget((key_t)key, (size_t)size, IPC_CREAT | IPC_EXCL | 0600 | SHM_HUGETLB | NORESERVE);
  if (!ok(page > 0 && id >= 0, "shmget of %llu bytes (%llu huge pages free): made",
          (unsigned long long)size, (unsigned long long)free_pages)) {
    return;
  }
  is_int(shmop_open(&seg, key, 'a', 0, 0, &call), -ENOMEM, "'a': -ENOMEM, not SIGBUS");
  is_str(call, "madvise", "... from madvise (MADV_POPULATE_READ)");
  is_int(shmop_open(&seg, key, 'w', 0, 0, &call), -ENOMEM, "'w': -ENOMEM");
  ok(kernel_stat(id, &ds) == 0 && ds.shm_nattch == 0, "... and nothing stays attached");
  shmctl(id, IPC_RMID, NULL);
}

static void test_huge(void) {
  const uint64_t four = UINT64_C(1) << 32, size = four + 4097;
  int32_t key = test_key(4);
  shmop_t seg, again;
  uint64_t len = 0, written = 0;
  unsigned char buf[16];
  const char *call = unset;

  tap_group("a segment over 4 GiB (SHM_NORESERVE: only touched pages cost memory)");
  if (create(&seg, key, 0600 | NORESERVE, (int64_t)size) != 0) return;
  is_u64(seg.size, size, "'n' with perms|010000 makes a 4 GiB + 4097 segment");
  ok(shmop_read_span(&seg, 0, 0, &len) == 0 && len == size,
     "count 0 from 0 spans it all, in 64 bits");
  ok(shmop_read_span(&seg, four, 0, &len) == 0 && len == 4097, "count 0 from 4 GiB: 4097 bytes");
  ok(shmop_write(&seg, "at4GiB", 6, four, &written) == 0 && written == 6, "write at offset 4 GiB");
  ok(shmop_write(&seg, "below", 5, four - 5, &written) == 0 && written == 5, "write just below it");
  ok(shmop_read(&seg, four - 5, 11, buf) == 0 && memcmp(buf, "belowat4GiB", 11) == 0,
     "read across 4 GiB gets both");
  ok(seg.addr[four + 6] == 0 && seg.addr[four - 6] == 0, "... and nothing else changed");
  ok(shmop_write(&seg, "0123456789", 10, size - 3, &written) == 0 && written == 3,
     "10 bytes at size - 3: 3 written");
  ok(shmop_read(&seg, size - 3, 0, buf) == 0, "read at size - 3, count 0");
  ok(shmop_read(&seg, size - 3, 3, buf) == 0 && memcmp(buf, "012", 3) == 0, "... the 3 bytes");
  ok(shmop_write(&seg, "x", 1, size, &written) == 0 && written == 0, "write at offset == size: 0");
  is_int(shmop_write(&seg, "x", 1, size + 1, &written), SHMOP_EOFFSET,
         "write at size + 1: SHMOP_EOFFSET");
  is_int(shmop_read_span(&seg, size + 1, 0, &len), SHMOP_EOFFSET,
         "read at size + 1: SHMOP_EOFFSET");
  is_int(shmop_read_span(&seg, 1, size, &len), SHMOP_ECOUNT, "count == size from 1: SHMOP_ECOUNT");
  if (is_int(shmop_open(&again, key, 'c', 0600, 1, &call), 0, "'c' with size 1 attaches it")) {
    is_u64(again.size, size, "... with its full 64-bit size");
    shmop_close(&again);
  }
  is_int(shmop_open(&again, key, 'c', 0600, (int64_t)size + 1, &call), -EINVAL,
         "'c' one byte larger: -EINVAL");
  shmop_delete(&seg);
  shmop_close(&seg);
  drop(key);
}

/* ==== Failure stages, as uid 65534 ==== */

enum { ROOT_NONE, ROOT_READ, FRESH }; /* segment: root's 0000, root's 0444, a missing key */

static const struct stage_case {
  const char *what;
  int target, fresh_key;
  char mode;
  int perms;
  int rc;           /* expected */
  const char *call; /* expected failing stage */
  int kept;         /* expected: the key still has a segment afterwards */
} stage_cases[] = {
    {"'a' perms 0 on a 0000 segment", ROOT_NONE, 0, 'a', 0, -EACCES, "shmctl", 1},
    {"'a' perms 0644 on a 0000 segment", ROOT_NONE, 0, 'a', 0644, -EACCES, "shmget", 1},
    {"'w' perms 0 on a 0000 segment", ROOT_NONE, 0, 'w', 0, -EACCES, "shmctl", 1},
    {"'c' perms 0 on a 0000 segment", ROOT_NONE, 0, 'c', 0, -EACCES, "shmctl", 1},
    {"'w' perms 0 on a 0444 segment", ROOT_READ, 0, 'w', 0, -EACCES, "shmat", 1},
    {"'c' perms 0 on a 0444 segment", ROOT_READ, 0, 'c', 0, -EACCES, "shmat", 1},
    {"'n' perms 0 creating", FRESH, 40, 'n', 0, -EACCES, "shmctl", 0},
    {"'n' perms 0400 creating", FRESH, 41, 'n', 0400, -EACCES, "shmat", 0},
    {"'c' perms 0 creating", FRESH, 42, 'c', 0, -EACCES, "shmctl", 0},
    {"'c' perms 0444 creating", FRESH, 43, 'c', 0444, -EACCES, "shmat", 0},
    {"'a' perms 0 on a 0444 segment", ROOT_READ, 0, 'a', 0, 0, "", 1}, /* then deletes */
};
#define STAGE_CASES ((int)(sizeof stage_cases / sizeof stage_cases[0]))

struct child_report {
  int dropped, uid, done;
  struct {
    int rc, kept;
    char call[8];
  } open[STAGE_CASES];
  int ro_delete, none_stat, none_find, none_find_id, none_remove;
};

static int32_t stage_key(const struct stage_case *c, const int32_t *targets) {
  return c->target == FRESH ? test_key(c->fresh_key) : targets[c->target];
}

/* The child: drops to nobody, runs every case, writes what happened to fd. */
static void stage_child(int fd, const int32_t *targets, const int *ids) {
  struct child_report r;
  shmop_t seg;
  const char *call;
  int i, id;

  memset(&r, 0, sizeof r);
  r.dropped = drop_to_nobody();
  r.uid = (int)getuid();
  for (i = 0; i < STAGE_CASES && r.dropped >= 0; i++) {
    const struct stage_case *c = &stage_cases[i];
    call = "";
    r.open[i].rc = shmop_open(&seg, stage_key(c, targets), c->mode, c->perms, 64, &call);
    if (r.open[i].rc != 0) snprintf(r.open[i].call, sizeof r.open[i].call, "%s", call);
    if (r.open[i].rc == 0) {
      r.ro_delete = shmop_delete(&seg); /* the last case: someone else's segment */
      shmop_close(&seg);
    }
    r.open[i].kept = probe_key(stage_key(c, targets)) >= 0;
  }
  {
    shmop_stat_t st;
    r.none_stat = shmop_stat(ids[ROOT_NONE], &st);
    r.none_find = shmop_find(targets[ROOT_NONE], &id);
    r.none_find_id = id;
    r.none_remove = shmop_remove(ids[ROOT_NONE]);
  }
  r.done = 1;
  if (write(fd, &r, sizeof r) != (ssize_t)sizeof r) _exit(3);
  _exit(0);
}

static void test_failure_stages(void) {
  int32_t targets[2] = {test_key(20), test_key(21)};
  int ids[2];
  struct child_report r;
  int fds[2], status = -1, i, as_root = geteuid() == 0;
  ssize_t got = 0, n;
  pid_t pid;

  tap_group("failure stages, in a child as uid 65534 (nobody)");
  memset(&r, 0, sizeof r);
  /* made with the real shmget: a 0000 segment cannot be opened, even by its owner */
  ids[ROOT_NONE] = probe_create(targets[ROOT_NONE], 64, 0000);
  ids[ROOT_READ] = probe_create(targets[ROOT_READ], 64, 0444);
  if (!ok(ids[ROOT_NONE] >= 0 && ids[ROOT_READ] >= 0, "segments 0000 and 0444 for the child")) {
    drop(targets[0]);
    drop(targets[1]);
    return;
  }
  if (pipe(fds) != 0) tap_bail("pipe: %s", strerror(errno));
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    stage_child(fds[1], targets, ids);
  }
  close(fds[1]);
  while (pid > 0 && got < (ssize_t)sizeof r &&
         (n = read(fds[0], (char *)&r + got, sizeof r - got)) > 0) {
    got += n;
  }
  close(fds[0]);
  if (pid > 0) waitpid(pid, &status, 0);

  ok(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == (ssize_t)sizeof r && r.done,
     "the child ran every case and exited with 0");
  if (as_root) {
    ok(r.dropped == 1 && r.uid == 65534, "... as uid 65534 (got %d, %d)", r.dropped, r.uid);
  } else {
    ok(r.dropped == 0 && r.uid == (int)getuid(), "... as this unprivileged user (uid %d)", r.uid);
  }
  for (i = 0; i < STAGE_CASES && r.done; i++) {
    const struct stage_case *c = &stage_cases[i];
    if (c->rc == 0) {
      is_int(r.open[i].rc, 0, "%s: opens", c->what);
    } else {
      ok(r.open[i].rc == c->rc && strcmp(r.open[i].call, c->call) == 0,
         "%s: %s in %s (got %s in %s)", c->what, shmop_strerror(c->rc), c->call,
         shmop_strerror(r.open[i].rc), r.open[i].call);
    }
    if (c->target == FRESH) {
      ok(!r.open[i].kept && probe_key(test_key(c->fresh_key)) == -ENOENT,
         "... and the segment it created is removed again (PHP leaks it)");
    } else if (c->rc != 0 || as_root) { /* unless it deleted its own segment */
      ok(r.open[i].kept, "... and the segment it found is kept");
    }
  }
  if (r.done) {
    is_int(r.ro_delete, as_root ? -EPERM : 0,
           as_root ? "shmop_delete of root's segment: -EPERM"
                   : "shmop_delete of its own segment: 0");
    is_int(r.none_stat, -EACCES, "shmop_stat without read permission: -EACCES");
    ok(r.none_find == 0 && r.none_find_id == ids[ROOT_NONE],
       "shmop_find needs no read permission: it finds the 0000 segment");
    is_int(r.none_remove, as_root ? -EPERM : 0,
           as_root ? "shmop_remove of root's segment: -EPERM"
                   : "shmop_remove of its own segment: 0");
  }
  if (as_root) {
    ok(probe_key(targets[ROOT_NONE]) == ids[ROOT_NONE] &&
           probe_key(targets[ROOT_READ]) == ids[ROOT_READ],
       "root's two segments are still there");
  }
  for (i = 0; i < STAGE_CASES; i++) {
    if (stage_cases[i].target == FRESH) drop(test_key(stage_cases[i].fresh_key));
  }
  drop(targets[0]);
  drop(targets[1]);
}

/* ==== The create-or-find loop, under races (doubles) ==== */

static void test_shmget_loop(void) {
  int32_t key = test_key(30);
  shmop_t seg, found;
  const char *call;
  long calls;
  int rc;

  tap_group("shmop__get: create, else look up, under a racing peer");
  race_next_creates(1);
  calls = test_shmget_calls;
  rc = shmop_open(&seg, key, 'c', 0600, 64, &ignored_call);
  if (is_int(rc, 0, "'c' while a peer creates and removes the key in between: opens")) {
    is_int(test_shmget_calls - calls, 3,
           "... in 3 shmget calls: create (EEXIST), look up (ENOENT), create");
    is_int(probe_key(key), seg.id, "... its own segment is the key's");
    is_u64(seg.size, 64, "... with its own size");
    shmop_delete(&seg);
    shmop_close(&seg);
  }
  drop(key);

  race_next_creates(1);
  fail_next_shmat(ENOMEM);
  call = unset;
  is_int(shmop_open(&seg, key, 'c', 0600, 64, &call), -ENOMEM,
         "the same, with shmat failing: -ENOMEM");
  is_str(call, "shmat", "... in shmat");
  is_int(probe_key(key), -ENOENT, "... and the segment it created in the second round is removed");
  drop(key);

  race_next_creates(99);
  fail_next_shmat(ENOMEM);
  calls = test_shmget_calls;
  is_int(shmop_open(&seg, key, 'c', 0600, 64, &ignored_call), -ENOMEM,
         "99 lost rounds, then shmat failing");
  is_int(test_shmget_calls - calls, 199, "... created in the 100th round (199 calls)");
  is_int(probe_key(key), -ENOENT, "... which is removed again");
  drop(key);

  race_next_creates(100);
  calls = test_shmget_calls;
  rc = shmop_open(&seg, key, 'c', 0600, 64, &ignored_call);
  if (is_int(rc, 0, "100 lost rounds: opens anyway")) {
    is_int(test_shmget_calls - calls, 201,
           "... with one plain IPC_CREAT call after the 200, as PHP makes");
    is_int(probe_key(key), seg.id, "... its segment is the key's");
    is_u64(seg.size, 64, "... with its size");
    shmop_delete(&seg);
    shmop_close(&seg);
  }
  drop(key);

  fail_next_shmget(ENOSPC);
  calls = test_shmget_calls;
  call = unset;
  is_int(shmop_open(&seg, key, 'c', 0600, 64, &call), -ENOSPC,
         "'c' when the system is out of segments: -ENOSPC");
  is_str(call, "shmget", "... in shmget");
  is_int(test_shmget_calls - calls, 1, "... after 1 call");
  fail_next_shmget(ENOSPC);
  is_int(shmop_open(&seg, key, 'n', 0600, 64, &call), -ENOSPC, "'n' likewise");
  is_int(probe_key(key), -ENOENT, "nothing was created");

  if (create(&found, key, 0600, 64) != 0) return;
  calls = test_shmget_calls;
  if (is_int(shmop_open(&seg, key, 'c', 0600, 64, &ignored_call), 0,
             "'c' on an existing segment")) {
    is_int(test_shmget_calls - calls, 2, "... in 2 calls: create (EEXIST), look up");
    shmop_close(&seg);
  }
  calls = test_shmget_calls;
  is_int(shmop_open(&seg, key, 'c', 0600, 65, &ignored_call), -EINVAL, "'c' larger: -EINVAL");
  is_int(test_shmget_calls - calls, 2, "... from the look-up");
  calls = test_shmget_calls;
  is_int(shmop_open(&seg, key, 'n', 0600, 64, &ignored_call), -EEXIST, "'n': -EEXIST");
  is_int(test_shmget_calls - calls, 1, "... in 1 call");
  fail_next_shmat(ENOMEM);
  call = unset;
  is_int(shmop_open(&seg, key, 'c', 0600, 64, &call), -ENOMEM,
         "'c' on it with shmat failing: -ENOMEM");
  is_str(call, "shmat", "... in shmat");
  is_int(probe_key(key), found.id, "... and the segment it did not create is kept");
  fail_next_shmat(ENOMEM);
  is_int(shmop_open(&seg, key, 'w', 0, 0, &call), -ENOMEM, "'w' with shmat failing: -ENOMEM");
  fail_next_shmat(ENOMEM);
  call = unset;
  is_int(shmop_open(&seg, key, 'a', 0, 0, &call), -ENOMEM, "'a' with shmat failing: -ENOMEM");
  is_str(call, "shmat", "... in shmat");
  is_int(probe_key(key), found.id, "... kept too");
  shmop_delete(&found);
  shmop_close(&found);
  drop(key);
}

/* ==== Introspection ==== */

static void test_introspection(void) {
  int32_t key = test_key(31), got_key = 0;
  shmop_t seg, other;
  shmop_stat_t st;
  struct shmid_ds ds;
  int id = -1, rc;

  tap_group("shmop_find, shmop_stat, shmop_remove, shmop_ftok");
  is_int(shmop_find(0, &id), -EINVAL, "shmop_find(0): -EINVAL (IPC_PRIVATE finds nothing)");
  is_int(shmop_find(key, &id), -ENOENT, "shmop_find of a missing key: -ENOENT");
  if (create(&seg, key, 0640, 5000) != 0) return;
  ok(shmop_find(key, &id) == 0 && id == seg.id, "shmop_find of its key: its id");

  memset(&st, 0xff, sizeof st);
  if (is_int(shmop_stat(seg.id, &st), 0, "shmop_stat") &&
      is_int(kernel_stat(seg.id, &ds), 0, "IPC_STAT")) {
    ok(st.key == key && st.id == seg.id && st.size == 5000 && st.mode == 0640,
       "... key, id, size and mode are the segment's");
    ok(st.uid == ds.shm_perm.uid && st.gid == ds.shm_perm.gid && st.cuid == ds.shm_perm.cuid &&
           st.cgid == ds.shm_perm.cgid && st.uid == (uint32_t)geteuid(),
       "... owner and creator are this process's user");
    ok(st.cpid == getpid() && st.lpid == getpid(), "... this process created it and last attached");
    ok(st.attachments == 1 && st.marked == 0, "... 1 attachment, not marked");
    ok(st.atime == (int64_t)ds.shm_atime && st.atime > 0 && st.dtime == 0 &&
           st.ctime == (int64_t)ds.shm_ctime && st.ctime > 0,
       "... attached, never detached, times as the kernel's");
  }
  if (shmop_open(&other, key, 'w', 0, 0, &ignored_call) == 0) {
    shmop_close(&other);
    ok(shmop_stat(seg.id, &st) == 0 && st.attachments == 1 && st.dtime > 0,
       "after another mapping came and went: 1 attachment, a detach time");
  }
  is_int(shmop_remove(seg.id), 0, "shmop_remove: 0");
  ok(shmop_stat(seg.id, &st) == 0 && st.marked == 1 && st.key == 0, "... marks it: key 0, marked");
  is_int(shmop_find(key, &id), -ENOENT, "... and frees the key");
  is_int(shmop_remove(seg.id), 0, "shmop_remove again while it is attached: 0");
  shmop_close(&seg);
  is_int(shmop_stat(seg.id, &st), -EINVAL, "shmop_stat once it is gone: -EINVAL");
  is_int(shmop_remove(seg.id), -EINVAL, "shmop_remove once it is gone: -EINVAL");
  is_int(shmop_stat(-1, &st), -EINVAL, "shmop_stat(-1): -EINVAL");

  ok(shmop_ftok("/", 'x', &got_key) == 0 && got_key == (int32_t)ftok("/", 'x'),
     "shmop_ftok(\"/\", 'x') is ftok's");
  rc = shmop_ftok(".", 0xff, &got_key);
  ok(rc == 0 && got_key == (int32_t)ftok(".", 0xff), "shmop_ftok(\".\", 0xff) is ftok's (0x%08x)",
     (unsigned)got_key);
  is_int(shmop_ftok("/nonexistent/nodejs-shm", 'x', &got_key), -ENOENT,
         "shmop_ftok of a missing path: -ENOENT");
  drop(key);
}

int main(void) {
  tap_start(155);
  test_kernel_view();
  test_ipc_private();
  test_delete_frees_key();
  test_close_detach();
  test_writable();
  test_hugetlb_noreserve();
  test_hugetlb_made_elsewhere();
  test_huge();
  test_failure_stages();
  test_shmget_loop();
  test_introspection();
  tap_group("cleanup");
  is_int(probe_sweep(), 0, "no segment left behind");
  return tap_done();
}
