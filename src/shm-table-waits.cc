/*
 * shm-table-waits.cc: waits on several sections of one table at once
 * (tableWaitSync; table.wait()'s sleeper in the wait room is tableWait), over
 * shmsect_many_* (src/sections-many.c): one sleeper for any number of
 * sections, on all their futex words at once.
 */
#include <cstring>

#include "shm.h"

namespace shm {

// Whether waits on several sections sleep on all their futex words at once
// where the system can (futex_waitv); NODEJS_SHM_WAITV=0 makes them poll, as
// on systems without it (the tests force that way so).
static bool Vectored() {
  static const bool vectored = [] {
    const char *choice = getenv("NODEJS_SHM_WAITV");
    return !(choice && strcmp(choice, "0") == 0);
  }();
  return vectored;
}

bool ManyWait::Read(const Nan::FunctionCallbackInfo<Value> &info) {
  double handle;
  if (!HandleArg(info[0], &handle)) return false;
  Local<Value> parts = info[1], since_arg = info[2];
  size_t n = parts->IsFloat64Array() ? parts.As<v8::Float64Array>()->Length() / 4 : 0;
  if (n == 0 || parts.As<v8::Float64Array>()->Length() != 4 * n) {
    ThrowArgType("sections", "a Float64Array of 4 offsets per section", parts);
    return false;
  }
  if (!since_arg->IsFloat64Array() || since_arg.As<v8::Float64Array>()->Length() != n) {
    ThrowArgType("sinceVersions", "a Float64Array of one version per section", since_arg);
    return false;
  }
  std::vector<double> offsets(4 * n), versions(n);
  parts.As<v8::Float64Array>()->CopyContents(offsets.data(), offsets.size() * sizeof(double));
  since_arg.As<v8::Float64Array>()->CopyContents(versions.data(), n * sizeof(double));
  seg = shmop_table_acquire(static_cast<int64_t>(handle));
  if (!seg) {
    ThrowBadHandle(handle);
    return false;
  }
  // A waiter attached read-only counts itself through a read-write mapping, where it may make one.
  unsigned char *counts = seg->readonly ? shmop_writable(seg) : seg->addr;
  sects.resize(n);
  since.resize(n);
  for (size_t i = 0; i < n; i++) {
    if (!SectionParts(&offsets[4 * i], seg, &sects[i])) return false;
    sects[i].counts = counts;
    if (!(versions[i] >= 0 && versions[i] <= kMaxSafeInteger) ||
        versions[i] != static_cast<double>(static_cast<uint64_t>(versions[i]))) {
      ThrowOutOfRange("sinceVersions", Between(0, kMaxSafeInteger, "an integer"),
                      NumberText(versions[i]));
      return false;
    }
    since[i] = static_cast<uint64_t>(versions[i]);
  }
  return true;
}

void ManyWait::Start(int64_t timeout_ms) {
  size_t n = sects.size();
  states.resize(n);
  versions.resize(n);
  expected.resize(n);
  many = {sects.data(), states.data(), versions.data(), expected.data(), n, 0};
  shmsect_many_start(&many, since.data(), timeout_ms, Vectored());
}

// The first retired section, or null.
const shmsect_t *ManyWait::Retired() const {
  for (const shmsect_t &sect : sects) {
    if (shmsect_retired(&sect) != SHMSECT_LIVE) return &sect;
  }
  return nullptr;
}

Local<Value> ManyWait::Versions() const {
  size_t n = versions.size();
  Local<v8::Float64Array> out = v8::Float64Array::New(
      v8::ArrayBuffer::New(v8::Isolate::GetCurrent(), n * sizeof(double)), 0, n);
  double *into = static_cast<double *>(out->Buffer()->Data());
  for (size_t i = 0; i < n; i++) into[i] = static_cast<double>(versions[i]);
  return out;
}

namespace {

/**
 * tableWaitSync(handle, sections, sinceVersions, timeoutMs) -> a Float64Array
 * of every section's version when one of them differed from its since
 * version, or the timeout passed. sections: a Float64Array of 4 offsets per
 * section (as for sectionRead), all of one table; sinceVersions: one per
 * section. Sleeps in slices of kTerminationSliceMs, so that a terminated
 * worker ends within one: undefined when it was terminated.
 */
NAN_METHOD(TableWaitSync) {
  ManyWait wait;
  int64_t timeout_ms;
  if (!wait.Read(info) || !TimeoutArg(info[3], &timeout_ms)) return;
  wait.Start(timeout_ms);
  while (!shmsect_many_wait_for(&wait.many, kTerminationSliceMs * 1000000u)) {
    if (Terminating()) return;
  }
  if (const shmsect_t *retired = wait.Retired()) return ThrowRetired(wait.seg, retired);
  info.GetReturnValue().Set(wait.Versions());
}

} // namespace

NAN_MODULE_INIT(InitTableWaits) { Nan::SetMethod(target, "tableWaitSync", TableWaitSync); }

} // namespace shm
