/*
 * shm-wait-ring.cc: the io_uring sleeper of asynchronous waits (Linux 6.7+).
 *
 * A group's sleep is one futex wait (FUTEX_WAIT, or FUTEX_WAITV for a wait
 * on several sections) submitted to the wait room's ring, whose fd the event
 * loop polls: a publish wakes the loop directly, as a socket would, with no
 * thread in between. Each sleep is bounded by the step's slice, after which
 * the group looks again (a writer that does not wake, a retirement).
 */
#include "shm-waits.h"

namespace shm {
namespace waits {

namespace {

// Submits the group's sleep to the ring: on its section's futex word, or on
// all the words of a group of several sections.
int RingSubmit(WaitRoom *room, Group *group, uint32_t expected, uint64_t slice) {
  if (!group->many) {
    return shmsect_ring_sleep(room->ring, shmsect_futex_word(&group->sect), expected, slice,
                              group->tag);
  }
  shmsect_many_t *many = &group->many->many;
  uint32_t *words[SHMSECT_MANY_MAX];
  size_t n = shmsect_many_words(many, words);
  return n == 1 ? shmsect_ring_sleep(room->ring, words[0], many->expected[0], slice, group->tag)
                : shmsect_ring_sleepv(room->ring, words, many->expected, n, slice, group->tag);
}

} // namespace

// The ring's sleep for a group that has none (room->mutex held): ends the
// waits whose version changed, then sleeps for the others.
void RingSleep(WaitRoom *room, Group *group) {
  for (;;) {
    uint64_t version = 0;
    uint32_t expected;
    uint64_t slice;
    int over = group->many
                   ? shmsect_many_step(&group->many->many, 0, &slice)
                   : shmsect_wait_step(&group->sect, &group->state, 0, &version, &expected, &slice);
    if (!FinishChanged(room, group, version)) return FreeGroup(group);
    if (over && group->many) { // cannot be (FinishChanged saw what the step saw): end it anyway
      Finish(room, group->waits.back(), version);
      return FreeGroup(group);
    }
    if (over) { // a new version, and waits for it: sleep on it afresh
      shmsect_wait_start(&group->state, version, -1);
      continue;
    }
    // The step counted the group among the sections' sleepers (so that a
    // publish wakes it); the next step, or FreeGroup, un-counts it.
    if (RingSubmit(room, group, expected, slice) == 0) {
      group->ring_sleeps++;
      room->sleeping[group->tag] = group;
      return;
    }
    if (group->many) shmsect_many_end(&group->many->many); // not asleep on the ring after all
    else shmsect_wait_end(&group->sect, &group->state);
    if (!StartOnHelper(room, group)) {
      // Cannot sleep at all: report the version as it is.
      while (!group->waits.empty()) Finish(room, group->waits.back(), version);
      FreeGroup(group);
    }
    return;
  }
}

// The ring's fd is readable: some sleeps ended.
void RingReady(uv_poll_t *poll, int, int) {
  WaitRoom *room = static_cast<WaitRoom *>(poll->data);
  uint64_t tags[64];
  int count;
  {
    std::lock_guard<std::mutex> lock(room->mutex);
    while ((count = shmsect_ring_reap(room->ring, tags, 64)) > 0) {
      for (int i = 0; i < count; i++) {
        auto found = room->sleeping.find(tags[i]);
        if (found == room->sleeping.end()) continue;
        Group *group = found->second;
        if (--group->ring_sleeps > 0) continue;
        room->sleeping.erase(found);
        if (group->waits.empty()) {
          FreeGroup(group); // abandoned while it slept
        } else {
          RingSleep(room, group);
        }
      }
    }
  }
  ReportFinished(room);
}

} // namespace waits
} // namespace shm
