/*
 * shm-wait-helpers.cc: the helper threads that sleep for asynchronous waits
 * where io_uring cannot (kernels before 6.7, io_uring refused by seccomp,
 * other systems, or NODEJS_SHM_WAIT_THREADS=1).
 *
 * A helper sleeps for one group at a time in shmsect_wait (a group of several
 * sections: shmsect_many_wait, on all their words at once), which counts it
 * among the section's sleepers, hands the waits that ended to the room and
 * wakes the JavaScript thread through its uv_async_t; then it waits for the
 * next group. Up to kIdleHelpers idle helpers are kept for reuse, so a stream
 * of short waits does not create a thread each.
 */
#include <algorithm>

#include "shm-waits.h"

namespace shm {
namespace waits {

namespace {

const size_t kIdleHelpers = 16; // more idle helpers than this exit

void HelperMain(void *arg) {
  Helper *helper = static_cast<Helper *>(arg);
  WaitRoom *room = helper->room;
  std::unique_lock<std::mutex> lock(room->mutex);
  for (;;) {
    helper->work.wait(lock, [helper] { return helper->group || helper->quit; });
    Group *group = helper->group;
    if (!group) return; // quit
    while (!helper->quit && !group->waits.empty()) {
      uint64_t since = shmsect_version(&group->sect), version = since;
      if (!FinishChanged(room, group, since)) break;
      if (!room->finished.empty()) uv_async_send(&room->async);
      group->stop = 0;
      lock.unlock();
      if (group->many) shmsect_many_wait(&group->many->many, &group->stop);
      else shmsect_wait(&group->sect, since, -1, &group->stop, &version);
      lock.lock();
    }
    // The group is over: its waits ended, or were cancelled, or the room closes.
    if (!group->waits.empty()) room->groups.erase(GroupKey(group));
    for (PendingWait *wait : group->waits) { // closing: CloseWaitRoom frees them
      wait->group = nullptr;
    }
    FreeGroup(group);
    helper->group = nullptr;
    if (!helper->quit && room->idle.size() >= kIdleHelpers) { // enough kept: this one leaves
      auto &helpers = room->helpers;
      helpers.erase(std::find(helpers.begin(), helpers.end(), helper));
      room->leaving.push_back(helper);
      helper->quit = true;
    }
    if (!room->finished.empty() || helper->quit) uv_async_send(&room->async);
    if (helper->quit) return;
    room->idle.push_back(helper);
  }
}

} // namespace

bool StartOnHelper(WaitRoom *room, Group *group) {
  Helper *helper;
  if (!room->idle.empty()) {
    helper = room->idle.back();
    room->idle.pop_back();
  } else {
    helper = new (std::nothrow) Helper();
    if (!helper) return false;
    helper->room = room;
    uv_thread_options_t options;
    options.flags = UV_THREAD_HAS_STACK_SIZE;
    options.stack_size = 256 * 1024;
    if (uv_thread_create_ex(&helper->thread, &options, HelperMain, helper) != 0) {
      delete helper;
      return false;
    }
    room->helpers.push_back(helper);
  }
  group->helper = helper;
  helper->group = group;
  helper->work.notify_one();
  return true;
}

void StopHelpers(WaitRoom *room) {
  std::vector<Helper *> helpers;
  {
    std::lock_guard<std::mutex> lock(room->mutex);
    for (Helper *helper : room->helpers) {
      helper->quit = true;
      if (helper->group) {
        helper->group->stop = 1;
        if (helper->group->seg) shmsect_wake(&helper->group->sect);
      }
      helper->work.notify_one();
    }
    helpers.swap(room->helpers);
    helpers.insert(helpers.end(), room->leaving.begin(), room->leaving.end());
    room->leaving.clear();
  }
  JoinHelpers(helpers);
}

void JoinHelpers(std::vector<Helper *> &leaving) {
  for (Helper *helper : leaving) {
    uv_thread_join(&helper->thread);
    delete helper;
  }
  leaving.clear();
}

} // namespace waits
} // namespace shm
