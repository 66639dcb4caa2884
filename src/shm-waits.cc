/*
 * shm-waits.cc: asynchronous section waits (sectionWait, sectionWaitCancel).
 *
 * The waits of one JavaScript thread on one section form a group with one
 * sleeper, whatever their number: a thousand pending waits on a section cost
 * what one does, and ending one wait wakes no one else. The sleeper is, on
 * Linux 6.7+, one futex sleep on an io_uring whose fd the event loop polls (a
 * publish wakes the loop directly, as a socket would); elsewhere (or when
 * io_uring is unavailable, or NODEJS_SHM_WAIT_THREADS=1) a helper thread
 * that sleeps in shmsect_wait and reports through a uv_async_t: each sleeper
 * in a file of its own (src/shm-wait-ring.cc, src/shm-wait-helpers.cc). Timeouts are one uv_timer_t
 * per thread over all its waits. Each JavaScript thread (main or worker) has its own wait room,
 * closed by an environment cleanup hook when that thread's environment goes away. A wait on several
 * sections (table.wait(), src/shm-table-waits.cc) is a group of its own with one sleeper on all
 * their futex words (StartMany).
 */
#include <cstdlib>
#include <cstring>

#include "shm-waits.h"

namespace shm {
namespace waits {

namespace {

thread_local WaitRoom *wait_room = nullptr;

void FreeWait(PendingWait *wait) {
  delete wait->callback;
  delete wait->resource;
  delete wait;
}

} // namespace

// Frees a group whose sleeper is over: un-counted from the section's sleepers
// if the ring slept for it (a helper's shmsect_wait counts and un-counts itself).
void FreeGroup(Group *group) {
  if (group->seg) {
    if (group->many) shmsect_many_end(&group->many->many);
    else shmsect_wait_end(&group->sect, &group->state);
    shmop_table_release(group->seg);
  }
  delete group->many;
  delete group;
}

bool ManyChanged(const Group *group) {
  const ManyWait *many = group->many;
  for (size_t i = 0; i < many->sects.size(); i++) {
    const shmsect_t *sect = &many->sects[i];
    if (shmsect_retired(sect) != SHMSECT_LIVE || shmsect_version(sect) != many->since[i])
      return true;
  }
  return false;
}

namespace {

// What a wait on several sections reports: every section's version now, and
// the first retired word that is not 0.
void ManyResult(const Group *group, PendingWait *wait) {
  const std::vector<shmsect_t> &sects = group->many->sects;
  wait->versions.resize(sects.size());
  for (size_t i = 0; i < sects.size(); i++) {
    wait->versions[i] = shmsect_version(&sects[i]);
    uint32_t retired = shmsect_retired(&sects[i]);
    if (wait->retired == SHMSECT_LIVE) wait->retired = retired;
  }
}

} // namespace

// Ends a wait with `version` (room->mutex held): out of its group and the
// deadlines, into finished. Returns its group if it left it empty.
Group *Finish(WaitRoom *room, PendingWait *wait, uint64_t version) {
  Group *group = wait->group;
  auto &waits = group->waits;
  waits[wait->index] = waits.back();
  waits[wait->index]->index = wait->index;
  waits.pop_back();
  wait->group = nullptr;
  wait->version = version;
  wait->retired = shmsect_retired(&group->sect);
  if (group->many) ManyResult(group, wait);
  if (wait->timed) room->deadlines.erase(wait->deadline);
  room->waits.erase(wait->id);
  room->finished.push_back(wait);
  if (!waits.empty()) return nullptr;
  room->groups.erase(GroupKey(group));
  return group;
}

// Ends every wait of the group that waits for another version than `version`,
// or all of them once the table is retired: a retired section never changes
// again, so a sleeper that went on would wake at once, forever (room->mutex
// held). Returns whether waits remain.
bool FinishChanged(WaitRoom *room, Group *group, uint64_t version) {
  if (group->many) { // its one wait
    if (ManyChanged(group)) Finish(room, group->waits.back(), version);
    return !group->waits.empty();
  }
  bool retired = shmsect_retired(&group->sect) != SHMSECT_LIVE;
  for (size_t i = group->waits.size(); i-- > 0;) {
    PendingWait *wait = group->waits[i];
    if (retired || wait->since != version) Finish(room, wait, version);
  }
  return !group->waits.empty();
}

namespace {

// A group emptied by a cancel or a timeout, not by its sleeper (room->mutex
// held): its sleeper is told to stop, and frees the group (and lets go of the
// mapping) when it does.
void Abandon(WaitRoom *room, Group *group) {
  (void)room;
  if (group->helper || group->ring_sleeps > 0) {
    group->stop = 1;
    shmsect_wake(&group->sect); // one wake for the whole group; the sleeper frees it
  } else {
    FreeGroup(group);
  }
}

// Keeps the event loop alive exactly while waits are pending (loop thread).
void UpdateRefs(WaitRoom *room) {
  bool busy = !room->waits.empty() || !room->finished.empty();
  auto set = [busy](uv_handle_t *handle) { busy ? uv_ref(handle) : uv_unref(handle); };
  set(reinterpret_cast<uv_handle_t *>(&room->async));
  if (room->ring) set(reinterpret_cast<uv_handle_t *>(&room->poll));
}

} // namespace

// On the JavaScript thread: hands every finished wait its version, and joins
// helpers that left.
void ReportFinished(WaitRoom *room) {
  std::vector<PendingWait *> finished;
  std::vector<Helper *> leaving;
  {
    std::lock_guard<std::mutex> lock(room->mutex);
    finished.swap(room->finished);
    leaving.swap(room->leaving);
    UpdateRefs(room);
  }
  JoinHelpers(leaving);
  Nan::HandleScope scope;
  for (PendingWait *wait : finished) {
    Local<Value> argv[] = {wait->many ? ManyWait::VersionsOf(wait->versions)
                                      : Nan::New(static_cast<double>(wait->version)).As<Value>(),
                           Nan::New(wait->retired)};
    wait->callback->Call(2, argv, wait->resource);
    FreeWait(wait);
  }
}

namespace {

// Arms the timer for the earliest deadline (loop thread, room->mutex held).
void ArmTimer(WaitRoom *room) {
  if (room->deadlines.empty()) {
    uv_timer_stop(&room->timer);
    return;
  }
  uint64_t now = uv_hrtime(), at = room->deadlines.begin()->first;
  uint64_t ms = at > now ? (at - now + 999999) / 1000000 : 0;
  uv_timer_start(
      &room->timer,
      [](uv_timer_t *timer) {
        WaitRoom *room = static_cast<WaitRoom *>(timer->data);
        {
          std::lock_guard<std::mutex> lock(room->mutex);
          uint64_t now = uv_hrtime();
          while (!room->deadlines.empty() && room->deadlines.begin()->first <= now) {
            PendingWait *wait = room->deadlines.begin()->second;
            Group *emptied = Finish(room, wait, shmsect_version(&wait->group->sect));
            if (emptied) Abandon(room, emptied);
          }
          ArmTimer(room);
        }
        ReportFinished(room);
      },
      ms, 0);
}

void WaitsFinished(uv_async_t *async) { ReportFinished(static_cast<WaitRoom *>(async->data)); }

// The thread's JavaScript environment is going away (a worker ends): stop
// every sleeper and helper, then free the waits and close the handles.
void CloseWaitRoom(void *arg) {
  WaitRoom *room = static_cast<WaitRoom *>(arg);
  StopHelpers(room); // each frees its group
  // What is left sleeps on the ring, which closing ends.
  for (auto &entry : room->groups) {
    if (!entry.second->ring_sleeps) FreeGroup(entry.second); // not on the ring: freed here
  }
  for (auto &entry : room->sleeping) FreeGroup(entry.second);
  for (auto &entry : room->waits) FreeWait(entry.second);
  for (PendingWait *wait : room->finished) FreeWait(wait);
  room->sleeping.clear();
  room->groups.clear();
  room->waits.clear();
  room->finished.clear();
  room->deadlines.clear();
  auto closed = [](uv_handle_t *handle) {
    WaitRoom *room = static_cast<WaitRoom *>(handle->data);
    if (--room->open_handles == 0) delete room;
  };
  if (room->ring) {
    uv_poll_stop(&room->poll);
    uv_close(reinterpret_cast<uv_handle_t *>(&room->poll), closed);
    shmsect_ring_close(room->ring);
  }
  uv_close(reinterpret_cast<uv_handle_t *>(&room->async), closed);
  uv_close(reinterpret_cast<uv_handle_t *>(&room->timer), closed);
  if (wait_room == room) wait_room = nullptr;
}

WaitRoom *ThisThreadsWaitRoom() {
  if (!wait_room) {
    WaitRoom *room = new WaitRoom();
    uv_loop_t *loop = Nan::GetCurrentEventLoop();
    uv_async_init(loop, &room->async, WaitsFinished);
    room->async.data = room;
    uv_timer_init(loop, &room->timer);
    room->timer.data = room;
    uv_unref(reinterpret_cast<uv_handle_t *>(&room->timer)); // the pending waits keep the loop
    room->open_handles = 2;
    const char *threads = getenv("NODEJS_SHM_WAIT_THREADS");
    if (!(threads && strcmp(threads, "1") == 0) && shmsect_ring_open(&room->ring) == 0) {
      if (uv_poll_init(loop, &room->poll, shmsect_ring_fd(room->ring)) == 0) {
        room->poll.data = room;
        room->open_handles++;
        uv_poll_start(&room->poll, UV_READABLE, RingReady);
      } else {
        shmsect_ring_close(room->ring);
        room->ring = nullptr;
      }
    }
    UpdateRefs(room);
    node::AddEnvironmentCleanupHook(v8::Isolate::GetCurrent(), CloseWaitRoom, room);
    wait_room = room;
  }
  return wait_room;
}

PendingWait *NewWait(WaitRoom *room, uint64_t since, Local<v8::Function> callback) {
  PendingWait *wait = new PendingWait(); // value-initialized: no group, no deadline
  wait->since = since;
  wait->id = ++room->last_id;
  wait->callback = new Nan::Callback(callback);
  wait->resource = new Nan::AsyncResource("nodejs-shm:wait");
  return wait;
}

// A wait that is over before it starts (room->mutex held): reported soon.
void FinishAtOnce(WaitRoom *room, PendingWait *wait) {
  room->finished.push_back(wait);
  uv_async_send(&room->async);
}

// Adds a wait to its group, with its deadline, and starts the sleeper of a
// fresh group (room->mutex held). Returns false, the wait and group freed,
// when no sleeper can start.
bool Join(WaitRoom *room, PendingWait *wait, Group *group, bool fresh, int64_t timeout_ms,
          uint64_t version) {
  wait->group = group;
  wait->index = group->waits.size();
  group->waits.push_back(wait);
  room->waits[wait->id] = wait;
  if (timeout_ms > 0 && timeout_ms <= static_cast<int64_t>(UINT64_MAX / 2000000u)) {
    wait->timed = true;
    wait->deadline =
        room->deadlines.emplace(uv_hrtime() + static_cast<uint64_t>(timeout_ms) * 1000000u, wait);
    if (wait->deadline == room->deadlines.begin()) ArmTimer(room);
  }
  if (fresh) {
    if (room->ring) {
      RingSleep(room, group);
    } else if (!StartOnHelper(room, group)) {
      Finish(room, wait, version);
      room->finished.pop_back();
      FreeGroup(group);
      FreeWait(wait);
      UpdateRefs(room);
      return false;
    }
    if (!room->finished.empty()) uv_async_send(&room->async);
  }
  return true;
}

/**
 * sectionWait(handle, section, since, timeoutMs, callback) -> an id for
 * sectionWaitCancel; callback(version, retired) runs when the version differs
 * from since, the timeout passes, the wait is cancelled or the table is
 * retired (retired: the table's retired word then, 0 while it is live).
 */
NAN_METHOD(SectionWait) {
  SectionCall call(info);
  if (!call.ok()) return;
  uint64_t since;
  int64_t timeout_ms;
  if (!WaitArgs(info, &since, &timeout_ms)) return;
  if (!info[4]->IsFunction()) return ThrowArgType("callback", "of type function", info[4]);
  call.CountSleepers(); // a read-only table's waiters count themselves through a writable mapping
  WaitRoom *room = ThisThreadsWaitRoom();
  std::lock_guard<std::mutex> lock(room->mutex);
  PendingWait *wait = NewWait(room, since, info[4].As<v8::Function>());
  uint64_t version = shmsect_version(call.sect());
  uint32_t retired = shmsect_retired(call.sect());
  if (version != since || timeout_ms == 0 || retired != SHMSECT_LIVE) { // over at once
    wait->version = version;
    wait->retired = retired;
    FinishAtOnce(room, wait);
  } else {
    const uint32_t *word = shmsect_futex_word(call.sect());
    auto found = room->groups.find(word);
    Group *group = found == room->groups.end() ? nullptr : found->second;
    bool fresh = !group;
    if (fresh) {
      group = new Group{call.Take(), *call.sect(), ++room->last_tag, {}, {}};
      shmsect_wait_start(&group->state, since, -1);
      room->groups[word] = group;
    }
    if (!Join(room, wait, group, fresh, timeout_ms, version)) {
      return Report(kError, "ERR_SHM_WAIT_FAILED").Throw();
    }
  }
  UpdateRefs(room);
  info.GetReturnValue().Set(wait->id);
}

} // namespace

double StartMany(ManyWait *many, int64_t timeout_ms, Local<v8::Function> callback) {
  WaitRoom *room = ThisThreadsWaitRoom();
  std::lock_guard<std::mutex> lock(room->mutex);
  PendingWait *wait = NewWait(room, 0, callback);
  wait->many = true;
  Group *group = new Group{many->seg, many->sects[0], ++room->last_tag, {}, {}};
  many->seg = nullptr; // the group holds it now
  group->many = many;
  many->Start(-1); // the room's timer keeps the deadline
  double id = wait->id;
  if (timeout_ms == 0 || ManyChanged(group)) { // over at once
    wait->group = group;
    group->waits.push_back(wait);
    Finish(room, wait, 0);
    FreeGroup(group);
    uv_async_send(&room->async);
  } else {
    room->groups[GroupKey(group)] = group;
    if (!Join(room, wait, group, true, timeout_ms, 0)) {
      Report(kError, "ERR_SHM_WAIT_FAILED").Throw();
      return -1;
    }
  }
  UpdateRefs(room);
  return id;
}

namespace {

/** sectionWaitCancel(id) -> makes a pending wait return now (its callback still runs). */
NAN_METHOD(SectionWaitCancel) {
  double id;
  if (!IntegerArg(info[0], "id", 0, kMaxSafeInteger, nullptr, &id)) return;
  if (!wait_room) return;
  WaitRoom *room = wait_room;
  std::lock_guard<std::mutex> lock(room->mutex);
  auto found = room->waits.find(id);
  if (found == room->waits.end()) return;
  PendingWait *wait = found->second;
  Group *emptied = Finish(room, wait, shmsect_version(&wait->group->sect));
  if (emptied) Abandon(room, emptied);
  if (wait->timed && room->deadlines.empty()) uv_timer_stop(&room->timer);
  uv_async_send(&room->async);
}

// How this thread's asynchronous waits sleep: "io_uring" (the event loop's own
// futex sleeps, Linux 6.7+) or "threads" (helper threads).
NAN_METHOD(WaitMechanism) {
  info.GetReturnValue().Set(
      Nan::New(ThisThreadsWaitRoom()->ring ? "io_uring" : "threads").ToLocalChecked());
}

} // namespace
} // namespace waits

NAN_MODULE_INIT(InitWaits) {
  Nan::SetMethod(target, "waitMechanism", waits::WaitMechanism);
  Nan::SetMethod(target, "sectionWait", waits::SectionWait);
  Nan::SetMethod(target, "sectionWaitCancel", waits::SectionWaitCancel);
}

} // namespace shm
