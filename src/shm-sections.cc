/*
 * shm-sections.cc: the section natives, over the atomic operations of
 * sections.c (lib/section-layout.js writes and checks the table;
 * docs/sections.md). Claims and claim locks are in src/shm-claims.cc.
 *
 * A section is described by a Float64Array [control, data0, data1, capacity]
 * that lib/section.js made from the table it validated; it is checked against
 * the segment again on every call, so no call can reach outside the segment.
 * Asynchronous waits are in src/shm-waits.cc.
 */
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "shm.h"

namespace shm {

bool SectionArg(Local<Value> value, const shmop_t *seg, shmsect_t *sect) {
  if (!value->IsFloat64Array() || value.As<v8::Float64Array>()->Length() != 4) {
    ThrowArgType("section", "a Float64Array of 4 offsets", value);
    return false;
  }
  double parts[4];
  value.As<v8::Float64Array>()->CopyContents(parts, sizeof parts);
  return SectionParts(parts, seg, sect);
}

bool SectionParts(const double *parts, const shmop_t *seg, shmsect_t *sect) {
  for (int i = 0; i < 4; i++) {
    double part = parts[i];
    if (!(part >= 0 && part <= kMaxSafeInteger) || std::trunc(part) != part) {
      ThrowCoded(kRangeError, "ERR_OUT_OF_RANGE", "A section offset is not a byte offset");
      return false;
    }
  }
  *sect = {seg->addr,
           seg->size,
           static_cast<uint64_t>(parts[0]),
           {static_cast<uint64_t>(parts[1]), static_cast<uint64_t>(parts[2])},
           static_cast<uint64_t>(parts[3]),
           seg->readonly ? nullptr : seg->addr};
  if (shmsect_check(sect) != 0) {
    Report(kError, "ERR_SHM_CORRUPT").Set("key", seg->key).Set("part", "bounds").Throw();
    return false;
  }
  return true;
}

SectionCall::SectionCall(const Nan::FunctionCallbackInfo<Value> &info) : seg_(nullptr) {
  double handle;
  if (!HandleArg(info[0], &handle)) return;
  seg_ = shmop_table_acquire(static_cast<int64_t>(handle));
  if (!seg_) {
    ThrowBadHandle(handle);
    return;
  }
  if (!SectionArg(info[1], seg_, &sect_)) Drop();
}

bool WaitArgs(const Nan::FunctionCallbackInfo<Value> &info, uint64_t *since, int64_t *timeout_ms) {
  double number;
  if (!IntegerArg(info[2], "sinceVersion", 0, kMaxSafeInteger, nullptr, &number)) return false;
  *since = static_cast<uint64_t>(number);
  return TimeoutArg(info[3], timeout_ms);
}

bool TimeoutArg(Local<Value> timeout, int64_t *timeout_ms) {
  double number;
  if (timeout->IsUndefined() ||
      (timeout->IsNumber() && timeout.As<v8::Number>()->Value() == INFINITY)) {
    *timeout_ms = -1;
    return true;
  }
  if (!IntegerArg(timeout, "timeout", 0, kMaxSafeInteger, nullptr, &number)) return false;
  *timeout_ms = static_cast<int64_t>(number);
  return true;
}

void ThrowReadOnly(const char *operation) {
  Report(kError, "ERR_SHM_READ_ONLY").Set("operation", operation).Throw();
}

// The table was replaced or removed by its manager (lib/section.js follows or explains).
void ThrowRetired(const shmop_t *seg, const shmsect_t *sect) {
  uint32_t how = shmsect_retired(sect);
  if (how != SHMSECT_REPLACED && how != SHMSECT_REMOVED) {
    return Report(kError, "ERR_SHM_CORRUPT")
        .Set("key", seg->key)
        .Set("part", "retired word")
        .Throw();
  }
  Report(kError, "ERR_SHM_TABLE_RETIRED")
      .Set("key", seg->key)
      .Set("retired", how == SHMSECT_REMOVED ? "removed" : "replaced")
      .Throw();
}

namespace {

// WaitArgs, then spinUs (info[4]; undefined: none): microseconds of checking
// in a tight loop before a wait sleeps, as nanoseconds within the timeout.
bool SpinWaitArgs(const Nan::FunctionCallbackInfo<Value> &info, uint64_t *since,
                  int64_t *timeout_ms, uint64_t *spin_ns) {
  double spin_us = 0;
  if (!WaitArgs(info, since, timeout_ms)) return false;
  if (!info[4]->IsUndefined() &&
      !IntegerArg(info[4], "spin", 0, 1e6, "microseconds, at most 1 s", &spin_us)) {
    return false;
  }
  if (*timeout_ms >= 0) spin_us = std::min(spin_us, static_cast<double>(*timeout_ms) * 1000);
  *spin_ns = static_cast<uint64_t>(spin_us) * 1000u;
  return true;
}

void ThrowCorrupt(const shmop_t *seg) {
  Report(kError, "ERR_SHM_CORRUPT").Set("key", seg->key).Set("part", "control").Throw();
}

/*
 * shmsect_read into a target that lies in a live view: through a buffer in
 * between (see InAView), the payload's size, not the target's: a small one
 * first, then one as large as the payload the first read found. Returns
 * shmsect_read's code, or -ENOMEM after throwing.
 */
int ReadAliased(const shmsect_t *sect, unsigned char *into, uint64_t room,
                shmsect_snapshot_t *snap) {
  unsigned char small[4096];
  Scratch large;
  unsigned char *aside = small;
  uint64_t size = room < sizeof small ? room : sizeof small;
  for (int round = 0;; round++) {
    int rc = shmsect_read(sect, aside, size, snap);
    if (rc != SHMSECT_ETOOSMALL || snap->length > room) {
      if (rc == 0) memcpy(into, aside, static_cast<size_t>(snap->length));
      return rc;
    }
    // A later version outgrew the buffer: at most the capacity, after that.
    size = round == 0 ? snap->length : std::min(room, sect->capacity);
    if (!large.Reserve(size)) return -ENOMEM;
    aside = large.data();
  }
}

/*
 * section.read()'s payload in one call into the addon: a new Buffer of exactly
 * the committed payload. Its memory is malloc'd here and handed to the Buffer
 * (a failure throws ENOMEM, where V8's own allocation would end the process).
 * The first read only learns the length; a later version that outgrew the
 * room is read again into room that doubles, up to the capacity. Returns
 * shmsect_read's code, or -ENOMEM after throwing (a payload too long for a
 * Buffer, or no memory).
 */
int ReadFresh(const shmsect_t *sect, shmsect_snapshot_t *snap, Local<Object> *buffer) {
  Scratch room;
  unsigned char none;
  unsigned char *into = &none;
  uint64_t size = 0;
  int rc;
  for (int round = 0; (rc = shmsect_read(sect, into, size, snap)) == SHMSECT_ETOOSMALL; round++) {
    if (snap->length > node::Buffer::kMaxLength) {
      ThrowOutOfRange("data", "at most buffer.constants.MAX_LENGTH bytes",
                      NumberText(static_cast<double>(snap->length)));
      return -ENOMEM;
    }
    size = round == 0 ? snap->length : std::max(snap->length, std::min(sect->capacity, size * 2));
    if (!room.Reserve(size)) return -ENOMEM;
    into = room.data();
  }
  if (rc != 0) return rc;
  if (!room.data() && !room.Reserve(0)) return -ENOMEM; // nothing published, or an empty payload
  // Node frees the memory with the Buffer (or at once, after throwing, if it cannot make one).
  char *data = reinterpret_cast<char *>(room.Release());
  return node::Buffer::New(v8::Isolate::GetCurrent(), data, static_cast<size_t>(snap->length))
                 .ToLocal(buffer)
             ? 0
             : -ENOMEM;
}

// Throws for a read that failed (rc from shmsect_read); returns whether it did.
bool ThrowReadFailure(const SectionCall &call, int rc) {
  if (rc == SHMSECT_ECORRUPT) ThrowCorrupt(call.seg());
  else if (rc == SHMSECT_ERETIRED) ThrowRetired(call.seg(), call.sect());
  else if (rc == SHMSECT_ESTARVED)
    Report(kError, "ERR_SHM_READ_STARVED").Set("key", call.seg()->key).Throw();
  else return false;
  return true;
}

/** sectionVersion(handle, section) -> the committed version (0: none yet). */
NAN_METHOD(SectionVersion) {
  SectionCall call(info);
  if (!call.ok()) return;
  if (shmsect_retired(call.sect()) != SHMSECT_LIVE) return ThrowRetired(call.seg(), call.sect());
  info.GetReturnValue().Set(static_cast<double>(shmsect_version(call.sect())));
}

// Writes what a read saw into out (Float64Array(4)): version, length, published (us), writer pid.
void SetSnapshot(Local<Value> out, const shmsect_snapshot_t &snap) {
  double parts[4] = {static_cast<double>(snap.version), static_cast<double>(snap.length),
                     static_cast<double>(snap.published_us), static_cast<double>(snap.writer_pid)};
  Local<v8::Float64Array> array = out.As<v8::Float64Array>();
  memcpy(static_cast<char *>(array->Buffer()->Data()) + array->ByteOffset(), parts, sizeof parts);
}

/**
 * sectionRead(handle, section, target, out, grow) -> true when the committed
 * payload was copied into target, false when it needs more room (out[1] says
 * how much). With grow (section.read()), a payload that does not fit comes
 * back instead as a new Buffer of exactly the payload, still in this one call.
 * out (Float64Array(4)) gets version, length, published (us), writer pid.
 */
NAN_METHOD(SectionRead) {
  SectionCall call(info);
  if (!call.ok()) return;
  if (!info[2]->IsArrayBufferView()) {
    return ThrowArgType("target", "an instance of Buffer, TypedArray, or DataView", info[2]);
  }
  if (!info[3]->IsFloat64Array() || info[3].As<v8::Float64Array>()->Length() != 4) {
    return ThrowArgType("out", "a Float64Array of 4", info[3]);
  }
  shmsect_snapshot_t snap;
  Bytes room = ViewBytes(info[2]);
  unsigned char *into = const_cast<unsigned char *>(room.data);
  int rc = InAView(into, room.length) // see InAView
               ? ReadAliased(call.sect(), into, room.length, &snap)
               : shmsect_read(call.sect(), into, room.length, &snap);
  if (rc == SHMSECT_ETOOSMALL && info[4]->IsTrue()) { // a payload longer than read() guessed
    Local<Object> buffer;
    rc = ReadFresh(call.sect(), &snap, &buffer);
    if (rc == -ENOMEM || ThrowReadFailure(call, rc)) return; // thrown
    SetSnapshot(info[3], snap);
    return info.GetReturnValue().Set(buffer);
  }
  if (rc == -ENOMEM || ThrowReadFailure(call, rc)) return; // thrown
  SetSnapshot(info[3], snap);
  info.GetReturnValue().Set(rc == 0);
}

/** sectionPublish(handle, section, data) -> the new version. */
NAN_METHOD(SectionPublish) {
  SectionCall call(info);
  if (!call.ok()) return;
  Scratch text;
  Bytes bytes;
  if (!DataArg(info[2], &text, &bytes)) return;
  if (call.seg()->readonly) {
    return ThrowReadOnly("publish");
  }
  Scratch aside;
  const unsigned char *data = bytes.data;
  if (!Unaliased(&data, bytes.length, &aside)) return;
  uint64_t version = 0;
  int rc = shmsect_publish(call.sect(), shmsect_self(), data, bytes.length, &version);
  if (rc == SHMSECT_ERETIRED) return ThrowRetired(call.seg(), call.sect());
  if (rc == SHMSECT_ENOTWRITER) {
    return Report(kError, "ERR_SHM_NOT_WRITER").Set("key", call.seg()->key).Throw();
  }
  if (rc == SHMSECT_ETOOSMALL) {
    return ThrowOutOfRange(
        "data",
        Between(0, static_cast<double>(call.sect()->capacity), "the section's capacity, in bytes"),
        NumberText(static_cast<double>(bytes.length)) + " bytes");
  }
  info.GetReturnValue().Set(static_cast<double>(version));
}

} // namespace

/*
 * Whether this thread's JavaScript is being terminated (worker.terminate(),
 * process.exit() from another thread). V8 only notices a termination request
 * when JavaScript runs, and a futex sleep is not interrupted by one; so a
 * blocking wait runs an empty function between slices: V8 handles pending
 * interrupts at its entry, and the call fails once terminating.
 */
thread_local Nan::Global<v8::Function> *termination_probe = nullptr;

bool Terminating() {
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  if (isolate->IsExecutionTerminating()) return true;
  if (!termination_probe) {
    Local<v8::Script> script;
    Local<Value> value;
    if (!Nan::CompileScript(Nan::New("(function () {})").ToLocalChecked()).ToLocal(&script) ||
        !Nan::RunScript(script).ToLocal(&value) || !value->IsFunction()) {
      return isolate->IsExecutionTerminating();
    }
    termination_probe = new Nan::Global<v8::Function>(value.As<v8::Function>());
    node::AddEnvironmentCleanupHook(
        isolate,
        [](void *) {
          delete termination_probe;
          termination_probe = nullptr;
        },
        nullptr);
  }
  Nan::TryCatch caught;
  Local<v8::Function> probe = Nan::New(*termination_probe);
  return Nan::Call(probe, Nan::GetCurrentContext()->Global(), 0, nullptr).IsEmpty() ||
         isolate->IsExecutionTerminating();
}

namespace {

/**
 * sectionWaitSync(handle, section, since, timeoutMs, spinUs) -> the version
 * when it returned. With spinUs (hot mode), it first checks the commit word in
 * a tight loop for up to that many microseconds, then sleeps; the timeout
 * counts from the start of both. Spins and sleeps in slices of
 * kTerminationSliceMs, so that a terminated worker ends within one slice;
 * undefined when it was terminated.
 */
NAN_METHOD(SectionWaitSync) {
  SectionCall call(info);
  if (!call.ok()) return;
  uint64_t since, version = 0, spin_ns;
  int64_t timeout_ms;
  if (!SpinWaitArgs(info, &since, &timeout_ms, &spin_ns)) return;
  call.CountSleepers();
  shmsect_wait_t state;
  shmsect_wait_start(&state, since, timeout_ms);
  bool over = false;
  while (spin_ns > 0 && !over) {
    uint64_t slice = std::min<uint64_t>(spin_ns, kTerminationSliceMs * 1000000u);
    over = shmsect_spin(call.sect(), since, slice, &version) != 0;
    spin_ns -= slice;
    if (!over && Terminating()) return;
  }
  while (!over &&
         !shmsect_wait_for(call.sect(), &state, kTerminationSliceMs * 1000000u, &version)) {
    if (Terminating()) return;
  }
  if (shmsect_retired(call.sect()) != SHMSECT_LIVE) {
    return ThrowRetired(call.seg(), call.sect());
  }
  info.GetReturnValue().Set(static_cast<double>(version));
}

/**
 * sectionSpin(handle, section, since, timeoutMs, spinUs) -> the version after
 * checking the commit word in a tight loop until it differs or spinUs (at most
 * timeoutMs) pass: wait's hot mode, on the calling thread. Checks its
 * arguments as sectionWaitSync does.
 */
NAN_METHOD(SectionSpin) {
  SectionCall call(info);
  if (!call.ok()) return;
  uint64_t since, version = 0, spin_ns;
  int64_t timeout_ms;
  if (!SpinWaitArgs(info, &since, &timeout_ms, &spin_ns)) return;
  shmsect_spin(call.sect(), since, spin_ns, &version);
  // Retirement changes the commit word: a version seen then is not a publish.
  if (shmsect_retired(call.sect()) != SHMSECT_LIVE) return ThrowRetired(call.seg(), call.sect());
  info.GetReturnValue().Set(static_cast<double>(version));
}

/**
 * sectionRetire(handle, section, how, target, out) -> as sectionRead, for the
 * manager: marks the section retired (1 replaced, 2 removed), copies its last
 * payload (the carry-over) and wakes its waiters.
 */
NAN_METHOD(SectionRetire) {
  SectionCall call(info);
  if (!call.ok()) return;
  double how;
  if (!IntegerArg(info[2], "how", 1, 2, nullptr, &how)) return;
  if (!info[3]->IsArrayBufferView()) {
    return ThrowArgType("target", "an instance of Buffer, TypedArray, or DataView", info[3]);
  }
  if (!info[4]->IsFloat64Array() || info[4].As<v8::Float64Array>()->Length() != 4) {
    return ThrowArgType("out", "a Float64Array of 4", info[4]);
  }
  if (call.seg()->readonly) return ThrowReadOnly("retire");
  Bytes room = ViewBytes(info[3]);
  unsigned char *into = const_cast<unsigned char *>(room.data);
  Scratch aside;
  bool aliased = InAView(into, room.length);          // see InAView
  if (aliased && !aside.Reserve(room.length)) return; // thrown (ENOMEM) before anything changed
  shmsect_snapshot_t snap;
  int rc = shmsect_retire(call.sect(), static_cast<uint32_t>(how), aliased ? aside.data() : into,
                          room.length, &snap);
  if (aliased && rc == 0) memcpy(into, aside.data(), static_cast<size_t>(snap.length));
  SetSnapshot(info[4], snap);
  info.GetReturnValue().Set(rc == 0);
}

} // namespace

NAN_MODULE_INIT(InitSections) {
  Nan::SetMethod(target, "sectionVersion", SectionVersion);
  Nan::SetMethod(target, "sectionRead", SectionRead);
  Nan::SetMethod(target, "sectionPublish", SectionPublish);
  Nan::SetMethod(target, "sectionWaitSync", SectionWaitSync);
  Nan::SetMethod(target, "sectionSpin", SectionSpin);
  Nan::SetMethod(target, "sectionRetire", SectionRetire);
}

} // namespace shm
