/*
 * shm-waits.cc: asynchronous section waits (sectionWait, sectionWaitCancel).
 *
 * Two ways. On Linux 6.7+ the JavaScript thread's own event loop sleeps on
 * the futex through an io_uring whose fd it polls: a publish wakes it
 * directly, as a socket would. Elsewhere (or when io_uring is unavailable, or
 * NODEJS_SHM_WAIT_THREADS=1) each wait runs shmsect_wait on a helper thread,
 * kept for reuse, which reports through a uv_async_t: two wake-ups instead of
 * one. Each JavaScript thread (main or worker) has its own wait room, closed
 * by an environment cleanup hook when that thread's environment goes away.
 */
#include <uv.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "shm.h"

namespace shm {

namespace {

struct PendingWait {
  shmop_t *seg;  // a reference: the mapping stays while the wait reads it
  shmsect_t sect;
  shmsect_wait_t state;
  volatile int cancel;
  uint64_t version;
  double id;
  Nan::Callback *callback;
  Nan::AsyncResource *resource;
};

struct WaitRoom;

// A helper thread: runs one wait at a time, then waits for the next.
struct Helper {
  WaitRoom *room;
  uv_thread_t thread;
  std::condition_variable work;
  PendingWait *job = nullptr;  // guarded by room->mutex
  bool quit = false;           // guarded by room->mutex
};

// One per JavaScript thread (main or worker) that waits.
struct WaitRoom {
  uv_async_t async;                     // finished waits to report (any thread)
  shmsect_ring_t *ring = nullptr;       // the io_uring, or null: helper threads
  uv_poll_t poll;                       // the ring's fd in the event loop
  int open_handles = 0;                 // closed at environment cleanup
  std::mutex mutex;
  std::vector<PendingWait *> running;   // guarded by mutex
  std::vector<PendingWait *> finished;  // guarded by mutex; reported by ReportFinished
  std::vector<Helper *> idle;           // guarded by mutex
  std::vector<Helper *> helpers;        // guarded by mutex: all alive
  std::vector<Helper *> leaving;        // guarded by mutex: ended, to be joined
  double last_id = 0;
};

thread_local WaitRoom *wait_room = nullptr;

const size_t kIdleHelpers = 16;  // more idle helpers than this exit

void FreeWait(PendingWait *wait) {
  shmop_table_release(wait->seg);
  delete wait->callback;
  delete wait->resource;
  delete wait;
}

// Moves a wait from running to finished (room->mutex held).
void Finish(WaitRoom *room, PendingWait *wait) {
  auto &running = room->running;
  running.erase(std::find(running.begin(), running.end(), wait));
  room->finished.push_back(wait);
}

// Keeps the event loop alive exactly while waits are pending (loop thread).
void UpdateRefs(WaitRoom *room) {
  bool busy = !room->running.empty() || !room->finished.empty();
  auto set = [busy](uv_handle_t *handle) { busy ? uv_ref(handle) : uv_unref(handle); };
  set(reinterpret_cast<uv_handle_t *>(&room->async));
  if (room->ring) set(reinterpret_cast<uv_handle_t *>(&room->poll));
}

void HelperMain(void *arg) {
  Helper *helper = static_cast<Helper *>(arg);
  WaitRoom *room = helper->room;
  std::unique_lock<std::mutex> lock(room->mutex);
  for (;;) {
    helper->work.wait(lock, [helper] { return helper->job || helper->quit; });
    if (!helper->job) return;  // quit
    PendingWait *wait = helper->job;
    lock.unlock();
    shmsect_wait(&wait->sect, wait->state.since, wait->state.timeout_ms, &wait->cancel,
                 &wait->version);
    lock.lock();
    helper->job = nullptr;
    Finish(room, wait);
    if (!helper->quit && room->idle.size() >= kIdleHelpers) {  // enough kept: this one leaves
      auto &helpers = room->helpers;
      helpers.erase(std::find(helpers.begin(), helpers.end(), helper));
      room->leaving.push_back(helper);
      helper->quit = true;
    }
    uv_async_send(&room->async);
    if (helper->quit) return;
    room->idle.push_back(helper);
  }
}

// Gives a wait to a helper thread (room->mutex held). Returns false if none can start.
bool StartOnHelper(WaitRoom *room, PendingWait *wait) {
  Helper *helper;
  if (!room->idle.empty()) {
    helper = room->idle.back();
    room->idle.pop_back();
  } else {
    helper = new Helper();
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
  helper->job = wait;
  helper->work.notify_one();
  return true;
}

// One step of a wait on the ring (room->mutex held): over, or asleep again.
void RingStep(WaitRoom *room, PendingWait *wait) {
  uint32_t expected;
  uint64_t slice;
  if (shmsect_wait_step(&wait->sect, &wait->state, wait->cancel, &wait->version, &expected, &slice)) {
    Finish(room, wait);
  } else if (shmsect_ring_sleep(room->ring, shmsect_futex_word(&wait->sect), expected, slice,
                                static_cast<uint64_t>(wait->id)) != 0 &&
             !StartOnHelper(room, wait)) {
    Finish(room, wait);  // cannot sleep at all: report the version as it is
  }
}

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
  for (Helper *helper : leaving) {
    uv_thread_join(&helper->thread);
    delete helper;
  }
  Nan::HandleScope scope;
  for (PendingWait *wait : finished) {
    // The mapping is still referenced: whether the wait ended because the table retired.
    uint32_t retired = shmsect_retired(&wait->sect);
    Local<Value> argv[] = {Nan::New(static_cast<double>(wait->version)), Nan::New(retired)};
    wait->callback->Call(2, argv, wait->resource);
    FreeWait(wait);
  }
}

void WaitsFinished(uv_async_t *async) { ReportFinished(static_cast<WaitRoom *>(async->data)); }

// The ring's fd is readable: some sleeps ended.
void RingReady(uv_poll_t *poll, int, int) {
  WaitRoom *room = static_cast<WaitRoom *>(poll->data);
  uint64_t tags[64];
  int count;
  {
    std::lock_guard<std::mutex> lock(room->mutex);
    while ((count = shmsect_ring_reap(room->ring, tags, 64)) > 0) {
      for (int i = 0; i < count; i++) {
        for (PendingWait *wait : room->running) {
          if (static_cast<uint64_t>(wait->id) == tags[i]) {
            RingStep(room, wait);
            break;
          }
        }
      }
    }
  }
  ReportFinished(room);
}

// The thread's JavaScript environment is going away (a worker ends): stop
// every wait and helper, then close the handles.
void CloseWaitRoom(void *arg) {
  WaitRoom *room = static_cast<WaitRoom *>(arg);
  std::vector<Helper *> helpers;
  {
    std::lock_guard<std::mutex> lock(room->mutex);
    for (PendingWait *wait : room->running) {
      wait->cancel = 1;
      shmsect_wake(&wait->sect);
    }
    for (Helper *helper : room->helpers) {
      helper->quit = true;
      helper->work.notify_one();
    }
    helpers.swap(room->helpers);
    helpers.insert(helpers.end(), room->leaving.begin(), room->leaving.end());
    room->leaving.clear();
  }
  for (Helper *helper : helpers) {
    uv_thread_join(&helper->thread);
    delete helper;
  }
  // Helpers are gone; what is still running sleeps on the ring, which closing ends.
  for (PendingWait *wait : room->running) FreeWait(wait);
  for (PendingWait *wait : room->finished) FreeWait(wait);
  room->running.clear();
  room->finished.clear();
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
  if (wait_room == room) wait_room = nullptr;
}

WaitRoom *ThisThreadsWaitRoom() {
  if (!wait_room) {
    WaitRoom *room = new WaitRoom();
    uv_loop_t *loop = Nan::GetCurrentEventLoop();
    uv_async_init(loop, &room->async, WaitsFinished);
    room->async.data = room;
    room->open_handles = 1;
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

/**
 * sectionWait(handle, section, since, timeoutMs, callback) -> an id for
 * sectionWaitCancel; callback(version) runs when the version differs from
 * since, the timeout passes, or the wait is cancelled.
 */
NAN_METHOD(SectionWait) {
  SectionCall call(info);
  if (!call.ok()) return;
  uint64_t since;
  int64_t timeout_ms;
  if (!WaitArgs(info, &since, &timeout_ms)) return;
  if (!info[4]->IsFunction()) return ThrowArgType("callback", "of type function", info[4]);
  WaitRoom *room = ThisThreadsWaitRoom();
  std::lock_guard<std::mutex> lock(room->mutex);
  PendingWait *wait = new PendingWait{call.Take(), *call.sect(), {}, 0, 0, ++room->last_id,
                                      new Nan::Callback(info[4].As<v8::Function>()),
                                      new Nan::AsyncResource("nodejs-shm:wait")};
  shmsect_wait_start(&wait->state, since, timeout_ms);
  room->running.push_back(wait);
  if (room->ring) {
    RingStep(room, wait);
  } else if (!StartOnHelper(room, wait)) {
    room->running.pop_back();
    FreeWait(wait);
    return Report(kError, "ERR_SHM_WAIT_FAILED").Throw();
  }
  if (!room->finished.empty()) uv_async_send(&room->async);  // over at once
  UpdateRefs(room);
  info.GetReturnValue().Set(wait->id);
}

/** sectionWaitCancel(id) -> makes a pending wait return now (its callback still runs). */
NAN_METHOD(SectionWaitCancel) {
  double id;
  if (!IntegerArg(info[0], "id", 0, kMaxSafeInteger, nullptr, &id)) return;
  if (!wait_room) return;
  std::lock_guard<std::mutex> lock(wait_room->mutex);
  for (PendingWait *wait : wait_room->running) {
    if (wait->id == id) {
      wait->cancel = 1;
      shmsect_wake(&wait->sect);
    }
  }
}

// How this thread's asynchronous waits sleep: "io_uring" (the event loop's own
// futex sleeps, Linux 6.7+) or "threads" (helper threads).
NAN_METHOD(WaitMechanism) {
  info.GetReturnValue().Set(Nan::New(ThisThreadsWaitRoom()->ring ? "io_uring" : "threads").ToLocalChecked());
}

}  // namespace

NAN_MODULE_INIT(InitWaits) {
  Nan::SetMethod(target, "waitMechanism", WaitMechanism);
  Nan::SetMethod(target, "sectionWait", SectionWait);
  Nan::SetMethod(target, "sectionWaitCancel", SectionWaitCancel);
}

}  // namespace shm
