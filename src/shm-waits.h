/*
 * shm-waits.h: what the wait runtime's files share: src/shm-waits.cc (the
 * wait rooms, groups, timeouts, reporting and the natives), its two sleepers,
 * src/shm-wait-ring.cc (io_uring) and src/shm-wait-helpers.cc (helper threads
 * where io_uring cannot), and src/shm-table-waits.cc. Only glue includes it.
 */
#ifndef SHM_WAITS_H
#define SHM_WAITS_H

#include <uv.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "shm.h"

namespace shm {
namespace waits {

struct Group;

struct PendingWait {
  Group *group; // null once over
  size_t index; // in group->waits
  uint64_t since;
  uint64_t version; // when it ended
  double id;
  bool timed;
  std::multimap<uint64_t, PendingWait *>::iterator deadline;
  Nan::Callback *callback;
  Nan::AsyncResource *resource;
  uint32_t retired = SHMSECT_LIVE; // the table's retired word when it ended
  bool many = false;               // a wait on several sections (table.wait())
  std::vector<uint64_t> versions;  // theirs, when it ended
};

struct Helper;

// The waits of one room on one section, and their one sleeper.
struct Group {
  shmop_t *seg; // a reference, held while anyone may read the section
  shmsect_t sect;
  uint64_t tag; // the ring's tag for its sleeps
  std::vector<PendingWait *> waits;
  shmsect_wait_t state;     // the ring's sleeps: version slept on, poll interval
  int ring_sleeps = 0;      // submitted to the ring, not yet reaped
  Helper *helper = nullptr; // the thread that sleeps for it
  volatile int stop = 0;    // tells the helper to look up (no waits left, or closing)
  // A wait on several sections (src/shm-table-waits.cc) is a group of its own,
  // never joined, whose one sleeper sleeps on all their futex words; sect is
  // its first section (a wake there ends its sleep). Owned; null otherwise.
  ManyWait *many = nullptr;
};

// A group's key in room->groups: its section's futex word, where waits on
// that section join it; a group of several sections is keyed by itself.
inline const uint32_t *GroupKey(const Group *group) {
  return group->many ? reinterpret_cast<const uint32_t *>(group->many)
                     : shmsect_futex_word(&group->sect);
}

struct WaitRoom;

// A helper thread: sleeps for one group at a time, then waits for the next.
struct Helper {
  WaitRoom *room;
  uv_thread_t thread;
  std::condition_variable work;
  Group *group = nullptr; // guarded by room->mutex
  bool quit = false;      // guarded by room->mutex
};

// One per JavaScript thread (main or worker) that waits.
struct WaitRoom {
  uv_async_t async;                                 // finished waits to report (any thread)
  uv_timer_t timer;                                 // the earliest deadline
  shmsect_ring_t *ring = nullptr;                   // the io_uring, or null: helper threads
  uv_poll_t poll;                                   // the ring's fd in the event loop
  int open_handles = 0;                             // closed at environment cleanup
  std::mutex mutex;                                 // guards what follows
  std::unordered_map<double, PendingWait *> waits;  // pending, by id
  std::map<const uint32_t *, Group *> groups;       // with waits, by futex word
  std::unordered_map<uint64_t, Group *> sleeping;   // by ring tag: groups the ring sleeps for
  std::multimap<uint64_t, PendingWait *> deadlines; // uv_hrtime() nanoseconds
  std::vector<PendingWait *> finished;              // to report (ReportFinished)
  std::vector<Helper *> idle;
  std::vector<Helper *> helpers; // all alive
  std::vector<Helper *> leaving; // ended, to be joined
  double last_id = 0;
  uint64_t last_tag = 0;
};

// ==== Groups (src/shm-waits.cc; room->mutex held) ====

// Frees a group whose sleeper is over.
void FreeGroup(Group *group);
// Ends a wait with `version`; returns its group if it left it empty.
Group *Finish(WaitRoom *room, PendingWait *wait, uint64_t version);
// Ends the group's waits for another version than `version` (all once the
// table is retired); returns whether waits remain.
bool FinishChanged(WaitRoom *room, Group *group, uint64_t version);

// Whether the waits of a group of several sections are over: a version
// differs from its since, or a section is retired.
bool ManyChanged(const Group *group);

// Starts a wait on several sections in this thread's room, taking many (and
// the segment it holds); callback(versions, retired) as for sectionWait, with
// a Float64Array of versions. Returns its id for sectionWaitCancel, or -1
// after throwing ERR_SHM_WAIT_FAILED.
double StartMany(ManyWait *many, int64_t timeout_ms, Local<v8::Function> callback);

// On the JavaScript thread: hands every finished wait its result, and joins
// helpers that left.
void ReportFinished(WaitRoom *room);

// ==== The io_uring sleeper (src/shm-wait-ring.cc) ====

// The ring's sleep for a group that has none (room->mutex held).
void RingSleep(WaitRoom *room, Group *group);
// The ring's fd is readable: ends or renews the sleeps that ended (loop thread).
void RingReady(uv_poll_t *poll, int status, int events);

// ==== Helper threads (src/shm-wait-helpers.cc) ====

// Gives a group to a helper thread (room->mutex held). Returns false if none can start.
bool StartOnHelper(WaitRoom *room, Group *group);
// Tells every helper to quit and joins them; each frees its group (room->mutex not held).
void StopHelpers(WaitRoom *room);
// Joins the helpers that left (room->leaving, swapped out under room->mutex).
void JoinHelpers(std::vector<Helper *> &leaving);

} // namespace waits
} // namespace shm

#endif
