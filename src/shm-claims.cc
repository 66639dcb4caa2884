/*
 * shm-claims.cc: the claims of sections (sectionClaim, sectionRelease,
 * sectionReleaseAll, sectionClaimant) and the claim locks a manager makes
 * (sectionLockCreate, sectionLockCheck, sectionLockRemove). A claim is held
 * by the JavaScript thread that took it: kept in its list here, and given
 * back when that thread's environment ends, whatever ends it.
 */
#include <vector>

#include "shm.h"

namespace shm {

namespace {

// ---- Claims held by this thread's JavaScript environment. Released when it
// is torn down (a worker that ends, however it ends), and by a table's close()
// or collection (sectionReleaseAll), so that a thread's claims die with it.

struct HeldClaim {
  double handle; // the table's segment handle, as JavaScript knows it
  shmop_t *seg;  // a reference: the mapping stays while the claim is held
  shmsect_t sect;
  int lock;
};

struct HeldClaims {
  std::vector<HeldClaim> list;
};

thread_local HeldClaims *held_claims = nullptr;

// Gives back the claims of `handle` (or all of them) held here.
void ReleaseHeld(HeldClaims *held, bool all, double handle) {
  auto &list = held->list;
  for (size_t i = list.size(); i-- > 0;) {
    if (!all && list[i].handle != handle) continue;
    HeldClaim claim = list[i];
    list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
    shmsect_release(&claim.sect, shmsect_self(), claim.lock);
    shmop_table_release(claim.seg);
  }
}

void ReleaseHeldAtCleanup(void *arg) {
  HeldClaims *held = static_cast<HeldClaims *>(arg);
  ReleaseHeld(held, true, 0);
  if (held_claims == held) held_claims = nullptr;
  delete held;
}

HeldClaims *ThisThreadsClaims() {
  if (!held_claims) {
    held_claims = new HeldClaims();
    node::AddEnvironmentCleanupHook(v8::Isolate::GetCurrent(), ReleaseHeldAtCleanup, held_claims);
  }
  return held_claims;
}

/**
 * sectionClaim(handle, section, lock, wakes) -> true, or the pid the claim
 * word names while another holds the claim lock (0: none written yet).
 */
NAN_METHOD(SectionClaim) {
  SectionCall call(info);
  if (!call.ok()) return;
  double lock;
  if (!IntegerArg(info[2], "lock", -1, 2147483647.0, nullptr, &lock)) return;
  if (call.seg()->readonly) {
    return ThrowReadOnly("claim");
  }
  uint64_t holder = 0;
  int rc = shmsect_claim(call.sect(), shmsect_self(), info[3]->IsTrue(), static_cast<int>(lock),
                         &holder);
  if (rc == SHMSECT_ERETIRED) return ThrowRetired(call.seg(), call.sect());
  if (rc == SHMSECT_EBUSY) return info.GetReturnValue().Set(static_cast<double>(holder >> 32));
  if (rc != 0) return Report::Os(rc, "semop").Set("key", call.seg()->key).Throw();
  double handle = info[0].As<v8::Number>()->Value();
  ThisThreadsClaims()->list.push_back({handle, call.seg(), *call.sect(), static_cast<int>(lock)});
  call.Take(); // the claim keeps the reference
  info.GetReturnValue().Set(true);
}

/** sectionRelease(handle, section) -> true, or false when this thread held no claim on it. */
NAN_METHOD(SectionRelease) {
  SectionCall call(info);
  if (!call.ok()) return;
  double handle = info[0].As<v8::Number>()->Value();
  if (held_claims) {
    auto &list = held_claims->list;
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (it->handle == handle && it->sect.control == call.sect()->control) {
        HeldClaim claim = *it;
        list.erase(it);
        shmsect_release(&claim.sect, shmsect_self(), claim.lock);
        shmop_table_release(claim.seg);
        return info.GetReturnValue().Set(true);
      }
    }
  }
  info.GetReturnValue().Set(false);
}

/** sectionReleaseAll(handle) -> undefined; gives back every claim this thread holds through handle.
 */
NAN_METHOD(SectionReleaseAll) {
  double handle;
  if (!HandleArg(info[0], &handle)) return;
  if (held_claims) ReleaseHeld(held_claims, false, handle);
}

/**
 * sectionClaimant(handle, section, lock) -> { pid, alive, self } of the claim,
 * or null; alive as shmsect_claim_alive says (the claim lock, where there is one).
 */
NAN_METHOD(SectionClaimant) {
  SectionCall call(info);
  if (!call.ok()) return;
  double lock;
  if (!IntegerArg(info[2], "lock", -1, 2147483647.0, nullptr, &lock)) return;
  uint64_t claim = shmsect_claimant(call.sect());
  if (claim == 0) return info.GetReturnValue().SetNull();
  Local<Object> result = Nan::New<Object>();
  Nan::Set(result, Nan::New("pid").ToLocalChecked(), Nan::New(static_cast<double>(claim >> 32)));
  Nan::Set(result, Nan::New("alive").ToLocalChecked(),
           Nan::New<v8::Boolean>(shmsect_claim_alive(claim, static_cast<int>(lock)) != 0));
  Nan::Set(result, Nan::New("self").ToLocalChecked(),
           Nan::New<v8::Boolean>(claim == shmsect_self()));
  info.GetReturnValue().Set(result);
}

/** sectionLockCreate(key, mode) -> the id of a new claim lock (-1 where there are none: Windows).
 */
NAN_METHOD(SectionLockCreate) {
  int32_t key;
  double mode;
  if (!KeyArg(info[0], &key)) return;
  if (!IntegerArg(info[1], "mode", 0, 0777, nullptr, &mode)) return;
  int id = -1;
  int rc = shmsect_lock_create(key, static_cast<int>(mode), &id);
  if (rc != 0) return Report::Os(rc, "semget").Set("key", key).Throw();
  info.GetReturnValue().Set(id);
}

/**
 * sectionLockCheck(id, key, uid, cuid) -> null when the set with this id is
 * the claim lock the table records (key, 3 semaphores, owner and creator);
 * else why not: 'foreign' or the errno name (EINVAL: no such set).
 */
NAN_METHOD(SectionLockCheck) {
  double id, uid, cuid;
  int32_t key;
  if (!IntegerArg(info[0], "id", -2147483648.0, 2147483647.0, nullptr, &id)) return;
  if (!KeyArg(info[1], &key)) return;
  if (!IntegerArg(info[2], "uid", 0, 4294967295.0, nullptr, &uid)) return;
  if (!IntegerArg(info[3], "cuid", 0, 4294967295.0, nullptr, &cuid)) return;
  int rc = shmsect_lock_check(static_cast<int>(id), key, static_cast<uint32_t>(uid),
                              static_cast<uint32_t>(cuid));
  if (rc == 0) return info.GetReturnValue().SetNull();
  info.GetReturnValue().Set(
      Nan::New(rc == SHMSECT_EFOREIGN ? "foreign" : ErrnoName(-rc)).ToLocalChecked());
}

/** sectionLockRemove(id) -> undefined; deletes a claim lock. */
NAN_METHOD(SectionLockRemove) {
  double id;
  if (!IntegerArg(info[0], "id", -1, 2147483647.0, nullptr, &id)) return;
  int rc = shmsect_lock_remove(static_cast<int>(id));
  if (rc != 0) return Report::Os(rc, "semctl").Throw();
}

} // namespace

NAN_MODULE_INIT(InitClaims) {
  Nan::SetMethod(target, "sectionClaim", SectionClaim);
  Nan::SetMethod(target, "sectionRelease", SectionRelease);
  Nan::SetMethod(target, "sectionClaimant", SectionClaimant);
  Nan::SetMethod(target, "sectionReleaseAll", SectionReleaseAll);
  Nan::SetMethod(target, "sectionLockCreate", SectionLockCreate);
  Nan::SetMethod(target, "sectionLockCheck", SectionLockCheck);
  Nan::SetMethod(target, "sectionLockRemove", SectionLockRemove);
}

} // namespace shm
