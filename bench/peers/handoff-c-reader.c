/*
 * handoff-c-reader.c: a C reader of a section, the reader side of the PHP
 * writer's floor in bench/handoff.js: PHP's publish and its FFI wake, received
 * by this project's section protocol in C (src/sections.c, linked in: the
 * sleeper count, a futex wait, a copy out) and nothing else, beside the Node
 * reader's row and the C -> C futex floor of the same run.
 *
 * Usage: handoff-c-reader KEY SECTION ACK MESSAGES
 * Attaches the section table at KEY (decimal), prints "armed", then for each
 * of MESSAGES messages: shmsect_wait for a new version of SECTION,
 * shmsect_read of its payload, t1 = CLOCK_MONOTONIC, and records t1 - t0 (t0:
 * the payload's first 8 bytes, PHP's hrtime(true)); then acknowledges by
 * publishing the message's number to ACK, which the PHP writer waits for.
 * It publishes there as the ACK section's claimant, the benchmark's Node
 * reader, which holds the claim and is idle while this reader runs.
 * Last line: {"latencies":[ns...],"cpuNs":N}, N the CPU time (user + system)
 * over the messages.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>

#include "clock.h"
#include "sections.h"

static void die(const char *what, int rc) {
  fprintf(stderr, "handoff-c-reader: %s (%d)\n", what, rc);
  exit(1);
}

static uint64_t u64at(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* The section named `name` of the table attached at base (docs/sections.md, 1.2:
   its layout was checked on attach by the benchmark's Node side). */
static shmsect_t find(unsigned char *base, uint64_t size, const char *name) {
  uint32_t count;
  memcpy(&count, base + 20, 4);
  for (uint32_t i = 0; i < count; i++) {
    unsigned char *entry = base + 64 + 80 * (size_t)i;
    if (strnlen((const char *)entry, 32) == strlen(name) && !memcmp(entry, name, strlen(name))) {
      shmsect_t s = {
          base, size, u64at(entry + 32), {u64at(entry + 48), u64at(entry + 56)}, u64at(entry + 40),
          base};
      int rc = shmsect_check(&s);
      if (rc != 0) die("section layout", rc);
      return s;
    }
  }
  die("no such section", 0);
  return (shmsect_t){0};
}

int main(int argc, char **argv) {
  if (argc != 5) die("usage: handoff-c-reader KEY SECTION ACK MESSAGES", 0);
  int id = shmget((key_t)strtol(argv[1], NULL, 10), 0, 0);
  struct shmid_ds ds;
  unsigned char *base = id < 0 || shmctl(id, IPC_STAT, &ds) != 0 ? NULL : shmat(id, NULL, 0);
  if (base == NULL || base == (void *)-1) die("cannot attach the table", id);
  shmsect_t message = find(base, ds.shm_segsz, argv[2]), ack = find(base, ds.shm_segsz, argv[3]);
  int messages = atoi(argv[4]), rc;
  uint64_t *latencies = calloc((size_t)messages, sizeof *latencies);
  unsigned char *copy = malloc(message.capacity);
  if (latencies == NULL || copy == NULL) die("out of memory", 0);
  uint64_t seen = shmsect_version(&message), acker = shmsect_claimant(&ack), version;
  printf("armed\n");
  fflush(stdout);
  uint64_t cpu0 = cpu_ns();
  for (int i = 0; i < messages; i++) {
    shmsect_snapshot_t snap;
    if ((rc = shmsect_wait(&message, seen, 10000, NULL, &version)) != 0 || version == seen)
      die("no message within 10 s", rc);
    if ((rc = shmsect_read(&message, copy, message.capacity, &snap)) != 0) die("shmsect_read", rc);
    uint64_t t1 = now_ns(), t0;
    memcpy(&t0, copy, 8);
    latencies[i] = t1 - t0;
    seen = snap.version;
    uint32_t number = (uint32_t)i;
    if ((rc = shmsect_publish(&ack, acker, &number, 4, &version)) != 0) die("shmsect_publish", rc);
  }
  uint64_t cpu = cpu_ns() - cpu0;
  printf("{\"latencies\":[");
  for (int i = 0; i < messages; i++)
    printf("%s%llu", i ? "," : "", (unsigned long long)latencies[i]);
  printf("],\"cpuNs\":%llu}\n", (unsigned long long)cpu);
  shmdt(base);
  return 0;
}
