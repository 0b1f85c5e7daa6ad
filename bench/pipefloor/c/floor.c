/* floor.c: pipefloor's pattern in C with one thread per role and blocking
 * system calls, to show what the kernel alone costs, without the Go runtime:
 * ventilator -> workers -> sink over TCP loopback (TCP_NODELAY), a 4-byte
 * length and an 8-byte id per message, one write per connection per batch,
 * an 8-byte ack per batch, one batch in flight. Workers forward the bytes
 * they read without parsing them. Prints examples/pipeline's -tsv lines,
 * labelled "raw-tcp-c".
 *
 *   cc -O2 -Wall -pthread -o floor floor.c && ./floor 10 1000000 4 32
 *   (batch count workers size)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long batch, count;
static int ack_fd;
static unsigned *seen;
static long received;
static pthread_mutex_t ack_mu = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void nodelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("setsockopt");
}

/* pair connects two loopback TCP sockets: a dials, b accepts. */
static void pair(int *a, int *b) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  int ln = socket(AF_INET, SOCK_STREAM, 0);
  if (ln < 0 || bind(ln, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ln, 1) < 0) die("listen");
  if (getsockname(ln, (struct sockaddr *)&sa, &len) < 0) die("getsockname");
  *a = socket(AF_INET, SOCK_STREAM, 0);
  if (*a < 0 || connect(*a, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
  *b = accept(ln, NULL, NULL);
  if (*b < 0) die("accept");
  close(ln);
  nodelay(*a);
  nodelay(*b);
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k <= 0) die("write");
    p += k;
    n -= (size_t)k;
  }
}

struct fds { int in, out; };

static void *worker(void *arg) {
  struct fds *f = arg;
  char buf[65536];
  for (;;) {
    ssize_t n = read(f->in, buf, sizeof buf);
    if (n <= 0) return NULL;
    write_all(f->out, buf, (size_t)n);
  }
}

static void *sink(void *arg) {
  int fd = *(int *)arg;
  static __thread char buf[65536 + 4096];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof buf - have);
    if (n <= 0) return NULL;
    have += (size_t)n;
    size_t off = 0;
    while (have - off >= 4) {
      uint32_t len;
      memcpy(&len, buf + off, 4);
      if (have - off < 4 + (size_t)len) break;
      uint64_t id;
      memcpy(&id, buf + off + 4, 8);
      if (id >= (uint64_t)count) { fprintf(stderr, "id %llu out of range\n", (unsigned long long)id); exit(1); }
      __atomic_add_fetch(&seen[id], 1, __ATOMIC_RELAXED);
      long r = __atomic_add_fetch(&received, 1, __ATOMIC_ACQ_REL);
      if (r % batch == 0 || r == count) {
        uint64_t v = (uint64_t)r;
        pthread_mutex_lock(&ack_mu);
        write_all(ack_fd, (char *)&v, 8);
        pthread_mutex_unlock(&ack_mu);
      }
      off += 4 + len;
    }
    memmove(buf, buf + off, have - off);
    have -= off;
  }
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: floor BATCH COUNT WORKERS SIZE\n");
    return 2;
  }
  batch = atol(argv[1]);
  count = atol(argv[2]);
  int workers = atoi(argv[3]), size = atoi(argv[4]);
  if (batch < 1 || count < 1 || workers < 1 || workers > 64 || size < 0 || size > 4096) {
    fprintf(stderr, "floor: want BATCH>=1 COUNT>=1 1<=WORKERS<=64 0<=SIZE<=4096\n");
    return 2;
  }
  seen = calloc((size_t)count, sizeof *seen);
  int ack_in;
  pair(&ack_fd, &ack_in);
  int to_worker[64];
  struct fds wf[64];
  int sink_fd[64];
  pthread_t th[128];
  for (int w = 0; w < workers; w++) {
    pair(&to_worker[w], &wf[w].in);
    pair(&wf[w].out, &sink_fd[w]);
    pthread_create(&th[2 * w], NULL, worker, &wf[w]);
    pthread_create(&th[2 * w + 1], NULL, sink, &sink_fd[w]);
  }
  size_t msglen = 12 + (size_t)size;
  size_t cap = (size_t)((batch + workers - 1) / workers + 1) * msglen;
  if (cap > (64u << 20)) cap = 64u << 20;
  char **out = malloc(sizeof(char *) * (size_t)workers);
  size_t *used = calloc((size_t)workers, sizeof(size_t));
  for (int w = 0; w < workers; w++) out[w] = malloc(cap);
  char msg[12 + 4096] = {0};
  uint32_t l = (uint32_t)(8 + size);
  memcpy(msg, &l, 4);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long sent = 0; sent < count;) {
    long end = sent + batch < count ? sent + batch : count;
    for (long id = sent; id < end; id++) {
      int w = (int)(id % workers);
      if (used[w] + msglen > cap) {
        write_all(to_worker[w], out[w], used[w]);
        used[w] = 0;
      }
      uint64_t v = (uint64_t)id;
      memcpy(msg + 4, &v, 8);
      memcpy(out[w] + used[w], msg, msglen);
      used[w] += msglen;
    }
    for (int w = 0; w < workers; w++) {
      if (used[w]) write_all(to_worker[w], out[w], used[w]);
      used[w] = 0;
    }
    uint64_t ack;
    size_t got = 0;
    while (got < 8) {
      ssize_t k = read(ack_in, (char *)&ack + got, 8 - got);
      if (k <= 0) die("read ack");
      got += (size_t)k;
    }
    if (ack != (uint64_t)end) {
      fprintf(stderr, "ack for %llu messages, want %ld\n", (unsigned long long)ack, end);
      return 1;
    }
    sent = end;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  long dup = 0, missing = 0;
  for (long i = 0; i < count; i++) {
    if (seen[i] == 0) missing++;
    else dup += seen[i] - 1;
  }
  printf("raw-tcp-c\t%ld\t%ld\t%.3f\t%.0f\t%s\n", batch, count, secs, (double)count / secs,
         dup == 0 && missing == 0 ? "yes" : "no");
  return dup == 0 && missing == 0 ? 0 : 1;
}
