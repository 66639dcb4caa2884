/*
 * shm-table-waits.cc: waits on several sections of one table at once
 * (tableWaitSync; table.wait()'s sleeper in the wait room is tableWait), over
 * shmsect_many_* (src/sections-many.c): one sleeper for any number of
 * sections, on all their futex words at once.
 */
#include <cstring>
#include <string>

#include "shm-waits.h"

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
  // An Array that lib/ made (plain elements: reading them runs no user code).
  if (!since_arg->IsArray() || since_arg.As<v8::Array>()->Length() != n) {
    ThrowArgType("sinceVersions", "an Array of one version per section", since_arg);
    return false;
  }
  std::vector<double> offsets(4 * n);
  parts.As<v8::Float64Array>()->CopyContents(offsets.data(), offsets.size() * sizeof(double));
  since.resize(n);
  for (size_t i = 0; i < n; i++) {
    double version;
    std::string name = "sinceVersions[" + std::to_string(i) + "]";
    if (!IntegerArg(Nan::Get(since_arg.As<v8::Object>(), static_cast<uint32_t>(i)).ToLocalChecked(),
                    name.c_str(), 0, kMaxSafeInteger, nullptr, &version)) {
      return false;
    }
    since[i] = static_cast<uint64_t>(version);
  }
  seg = shmop_table_acquire(static_cast<int64_t>(handle));
  if (!seg) {
    ThrowBadHandle(handle);
    return false;
  }
  // A waiter attached read-only counts itself through a read-write mapping, where it may make one.
  unsigned char *counts = seg->readonly ? shmop_writable(seg) : seg->addr;
  sects.resize(n);
  for (size_t i = 0; i < n; i++) {
    if (!SectionParts(&offsets[4 * i], seg, &sects[i])) return false;
    sects[i].counts = counts;
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

Local<Value> ManyWait::VersionsOf(const std::vector<uint64_t> &versions) {
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
  info.GetReturnValue().Set(ManyWait::VersionsOf(wait.versions));
}

/**
 * tableWait(handle, sections, sinceVersions, timeoutMs, callback) -> an id for
 * sectionWaitCancel: tableWaitSync's wait without blocking, one sleeper in
 * this thread's wait room (src/shm-waits.cc). callback(versions, retired)
 * runs when a version differs from its since version, the timeout passes,
 * the wait is cancelled or the table is retired (retired: a section's
 * retired word then, 0 while the table is live).
 */
NAN_METHOD(TableWait) {
  ManyWait *many = new ManyWait();
  int64_t timeout_ms;
  if (!many->Read(info) || !TimeoutArg(info[3], &timeout_ms)) return delete many;
  if (!info[4]->IsFunction()) {
    delete many;
    return ThrowArgType("callback", "of type function", info[4]);
  }
  double id = waits::StartMany(many, timeout_ms, info[4].As<v8::Function>());
  if (id >= 0) info.GetReturnValue().Set(id);
}

} // namespace

NAN_MODULE_INIT(InitTableWaits) {
  Nan::SetMethod(target, "tableWaitSync", TableWaitSync);
  Nan::SetMethod(target, "tableWait", TableWait);
}

} // namespace shm
