/*
 * shm-sections.cc: the section natives, over the atomic operations of
 * sections.c (lib/sections.js writes and checks the table; docs/sections.md).
 *
 * A section is described by a Float64Array [control, data0, data1, capacity]
 * that lib/sections.js made from the table it validated; it is checked against
 * the segment again on every call, so no call can reach outside the segment.
 * Asynchronous waits are in src/shm-waits.cc.
 */
#include <cmath>
#include <cstring>

#include "shm.h"

namespace shm {

namespace {

bool SectionArg(Local<Value> value, const shmop_t *seg, shmsect_t *sect) {
  if (!value->IsFloat64Array() || value.As<v8::Float64Array>()->Length() != 4) {
    ThrowArgType("section", "a Float64Array of 4 offsets", value);
    return false;
  }
  double parts[4];
  value.As<v8::Float64Array>()->CopyContents(parts, sizeof parts);
  for (double part : parts) {
    if (!(part >= 0 && part <= kMaxSafeInteger) || std::trunc(part) != part) {
      ThrowCoded(kRangeError, "ERR_OUT_OF_RANGE", "A section offset is not a byte offset");
      return false;
    }
  }
  *sect = {seg->addr, seg->size, static_cast<uint64_t>(parts[0]),
           {static_cast<uint64_t>(parts[1]), static_cast<uint64_t>(parts[2])},
           static_cast<uint64_t>(parts[3]), seg->readonly ? nullptr : seg->addr};
  if (shmsect_check(sect) != 0) {
    Report(kError, "ERR_SHM_CORRUPT").Set("key", seg->key).Set("part", "bounds").Throw();
    return false;
  }
  return true;
}

}  // namespace

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
  Local<Value> timeout = info[3];
  if (timeout->IsUndefined() || (timeout->IsNumber() && timeout.As<v8::Number>()->Value() == INFINITY)) {
    *timeout_ms = -1;
    return true;
  }
  if (!IntegerArg(timeout, "timeout", 0, kMaxSafeInteger, nullptr, &number)) return false;
  *timeout_ms = static_cast<int64_t>(number);
  return true;
}

namespace {

// spin: microseconds of hot checking before a wait sleeps (undefined: none).
bool SpinArg(Local<Value> value, double *spin_us) {
  *spin_us = 0;
  return value->IsUndefined() || IntegerArg(value, "spin", 0, 1e6, "microseconds, at most 1 s", spin_us);
}

void ThrowCorrupt(const shmop_t *seg) {
  Report(kError, "ERR_SHM_CORRUPT").Set("key", seg->key).Set("part", "control").Throw();
}

void ThrowReadOnly(const char *operation) {
  Report(kError, "ERR_SHM_READ_ONLY").Set("operation", operation).Throw();
}

/** sectionVersion(handle, section) -> the committed version (0: none yet). */
NAN_METHOD(SectionVersion) {
  SectionCall call(info);
  if (!call.ok()) return;
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
 * sectionRead(handle, section, target, out) -> true when the committed payload
 * was copied into target, false when it needs more room (out[1] says how much).
 * Without a target (undefined) -> a new Buffer of exactly the payload: one
 * call into the addon for section.read(). out (Float64Array(4)) gets version,
 * length, published (us), writer pid.
 */
NAN_METHOD(SectionRead) {
  SectionCall call(info);
  if (!call.ok()) return;
  bool fresh = info[2]->IsUndefined();
  if (!fresh && !info[2]->IsArrayBufferView()) {
    return ThrowArgType("target", "an instance of Buffer, TypedArray, or DataView", info[2]);
  }
  if (!info[3]->IsFloat64Array() || info[3].As<v8::Float64Array>()->Length() != 4) {
    return ThrowArgType("out", "a Float64Array of 4", info[3]);
  }
  shmsect_snapshot_t snap;
  int rc;
  if (fresh) {
    // Learn the length (nothing is copied), make a Buffer of it, read into it;
    // again if a publish in between made the payload longer.
    Local<Object> buffer;
    unsigned char none, *into = &none;
    uint64_t room = 0;
    while ((rc = shmsect_read(call.sect(), into, room, &snap)) == SHMSECT_ETOOSMALL) {
      if (snap.length > node::Buffer::kMaxLength) {
        return ThrowOutOfRange("data", "at most buffer.constants.MAX_LENGTH bytes", NumberText(static_cast<double>(snap.length)));
      }
      if (!Nan::NewBuffer(static_cast<uint32_t>(snap.length)).ToLocal(&buffer)) return;  // threw
      into = reinterpret_cast<unsigned char *>(node::Buffer::Data(buffer));
      room = snap.length;
    }
    if (rc == SHMSECT_ECORRUPT) return ThrowCorrupt(call.seg());
    SetSnapshot(info[3], snap);
    // Nothing to copy, or a later version shorter than the one the Buffer was made for.
    if (snap.length != room || buffer.IsEmpty()) {
      Local<Object> exact;
      if (!Nan::CopyBuffer(reinterpret_cast<char *>(into), static_cast<uint32_t>(snap.length)).ToLocal(&exact)) return;
      return info.GetReturnValue().Set(exact);
    }
    return info.GetReturnValue().Set(buffer);
  }
  Bytes room = ViewBytes(info[2]);
  unsigned char *into = const_cast<unsigned char *>(room.data);
  std::vector<unsigned char> aside;
  bool aliased = InAView(into, room.length);  // see InAView
  if (aliased) aside.resize(room.length);
  rc = shmsect_read(call.sect(), aliased ? aside.data() : into, room.length, &snap);
  if (rc == SHMSECT_ECORRUPT) return ThrowCorrupt(call.seg());
  if (aliased && rc == 0) memcpy(into, aside.data(), static_cast<size_t>(snap.length));
  SetSnapshot(info[3], snap);
  info.GetReturnValue().Set(rc == 0);
}

/** sectionPublish(handle, section, data) -> the new version. */
NAN_METHOD(SectionPublish) {
  SectionCall call(info);
  if (!call.ok()) return;
  std::string text;
  Bytes bytes;
  if (!DataArg(info[2], &text, &bytes)) return;
  if (call.seg()->readonly) {
    return ThrowReadOnly("publish");
  }
  std::vector<unsigned char> aside;
  const unsigned char *data = Unaliased(bytes.data, bytes.length, &aside);
  uint64_t version = 0;
  int rc = shmsect_publish(call.sect(), shmsect_self(), data, bytes.length, &version);
  if (rc == SHMSECT_ENOTWRITER) {
    return Report(kError, "ERR_SHM_NOT_WRITER").Set("key", call.seg()->key).Throw();
  }
  if (rc == SHMSECT_ETOOSMALL) {
    return ThrowOutOfRange("data", Between(0, static_cast<double>(call.sect()->capacity),
                                           "the section's capacity, in bytes"),
                           NumberText(static_cast<double>(bytes.length)) + " bytes");
  }
  info.GetReturnValue().Set(static_cast<double>(version));
}

/** sectionClaim(handle, section, lock, wakes) -> 0, or the pid of the live claimant. */
NAN_METHOD(SectionClaim) {
  SectionCall call(info);
  if (!call.ok()) return;
  double lock;
  if (!IntegerArg(info[2], "lock", -1, 2147483647.0, nullptr, &lock)) return;
  if (call.seg()->readonly) {
    return ThrowReadOnly("claim");
  }
  uint64_t holder = 0;
  int rc = shmsect_claim(call.sect(), shmsect_self(), info[3]->IsTrue(), static_cast<int>(lock), &holder);
  if (rc < 0 && rc != SHMSECT_EBUSY) {
    return Report::Os(rc, "semop").Set("key", call.seg()->key).Throw();
  }
  info.GetReturnValue().Set(rc == SHMSECT_EBUSY ? static_cast<double>(holder >> 32) : 0.0);
}

/** sectionRelease(handle, section, lock) -> true, or false when this process did not hold it. */
NAN_METHOD(SectionRelease) {
  SectionCall call(info);
  if (!call.ok()) return;
  double lock;
  if (!IntegerArg(info[2], "lock", -1, 2147483647.0, nullptr, &lock)) return;
  if (call.seg()->readonly) {
    return ThrowReadOnly("release");
  }
  int rc = shmsect_release(call.sect(), shmsect_self(), static_cast<int>(lock));
  if (rc < 0 && rc != SHMSECT_ENOTWRITER) {
    return Report::Os(rc, "semop").Set("key", call.seg()->key).Throw();
  }
  info.GetReturnValue().Set(rc == 0);
}

/** sectionClaimant(handle, section) -> { pid, alive, self } of the claim, or null. */
NAN_METHOD(SectionClaimant) {
  SectionCall call(info);
  if (!call.ok()) return;
  uint64_t claim = shmsect_claimant(call.sect());
  if (claim == 0) return info.GetReturnValue().SetNull();
  Local<Object> result = Nan::New<Object>();
  Nan::Set(result, Nan::New("pid").ToLocalChecked(), Nan::New(static_cast<double>(claim >> 32)));
  Nan::Set(result, Nan::New("alive").ToLocalChecked(), Nan::New<v8::Boolean>(shmsect_alive(claim) != 0));
  Nan::Set(result, Nan::New("self").ToLocalChecked(), Nan::New<v8::Boolean>(claim == shmsect_self()));
  info.GetReturnValue().Set(result);
}


/**
 * sectionWaitSync(handle, section, since, timeoutMs, spinUs) -> the version
 * when it returned. With spinUs, it first checks the commit word in a tight
 * loop for up to that many microseconds (bounded by the timeout), then sleeps.
 */
NAN_METHOD(SectionWaitSync) {
  SectionCall call(info);
  if (!call.ok()) return;
  uint64_t since, version = 0;
  int64_t timeout_ms;
  double spin_us = 0;
  if (!WaitArgs(info, &since, &timeout_ms) || !SpinArg(info[4], &spin_us)) return;
  call.CountSleepers();
  if (timeout_ms >= 0 && spin_us > timeout_ms * 1000.0) spin_us = static_cast<double>(timeout_ms) * 1000;
  if (spin_us > 0 && shmsect_spin(call.sect(), since, static_cast<uint64_t>(spin_us) * 1000u, &version)) {
    return info.GetReturnValue().Set(static_cast<double>(version));
  }
  shmsect_wait(call.sect(), since, timeout_ms, nullptr, &version);
  info.GetReturnValue().Set(static_cast<double>(version));
}

/** sectionSpin(handle, section, since, spinUs) -> the version after spinning until it differs or spinUs pass. */
NAN_METHOD(SectionSpin) {
  SectionCall call(info);
  if (!call.ok()) return;
  double since, spin_us = 0;
  uint64_t version = 0;
  if (!IntegerArg(info[2], "sinceVersion", 0, kMaxSafeInteger, nullptr, &since) || !SpinArg(info[3], &spin_us)) return;
  shmsect_spin(call.sect(), static_cast<uint64_t>(since), static_cast<uint64_t>(spin_us) * 1000u, &version);
  info.GetReturnValue().Set(static_cast<double>(version));
}

/** sectionLockOpen(key, mode) -> the claim lock's id (a PHP-compatible semaphore set). */
NAN_METHOD(SectionLockOpen) {
  int32_t key;
  double mode;
  if (!KeyArg(info[0], &key)) return;
  if (key == 0) return ThrowOutOfRange("key", "not 0 (IPC_PRIVATE): a claim lock is found by its key", "0");
  if (!IntegerArg(info[1], "mode", 0, 0777, nullptr, &mode)) return;
  int lock = -1;
  int rc = shmsect_lock_open(key, static_cast<int>(mode), &lock);
  if (rc != 0) return Report::Os(rc, "semget").Set("key", key).Throw();
  info.GetReturnValue().Set(lock);
}

/** sectionLockRemove(key) -> undefined; deletes the claim lock of a table. */
NAN_METHOD(SectionLockRemove) {
  int32_t key;
  if (!KeyArg(info[0], &key)) return;
  int rc = shmsect_lock_remove(key);
  if (rc != 0) return Report::Os(rc, "semctl").Set("key", key).Throw();
}


}  // namespace

NAN_MODULE_INIT(InitSections) {
  Nan::SetMethod(target, "sectionVersion", SectionVersion);
  Nan::SetMethod(target, "sectionRead", SectionRead);
  Nan::SetMethod(target, "sectionPublish", SectionPublish);
  Nan::SetMethod(target, "sectionClaim", SectionClaim);
  Nan::SetMethod(target, "sectionRelease", SectionRelease);
  Nan::SetMethod(target, "sectionClaimant", SectionClaimant);
  Nan::SetMethod(target, "sectionWaitSync", SectionWaitSync);
  Nan::SetMethod(target, "sectionSpin", SectionSpin);
  Nan::SetMethod(target, "sectionLockOpen", SectionLockOpen);
  Nan::SetMethod(target, "sectionLockRemove", SectionLockRemove);
}

}  // namespace shm
