/* bench/relay.sh's libzmq consumer: a PULL socket in a tight counting
 * loop, so the consumer is never what limits the measured sender.
 * libzmq's headers are not installed here, so the few prototypes and
 * constants it needs are declared below (stable ABI of libzmq 4.x).
 *
 *   pull ENDPOINT N count|latency
 *
 * Binds ENDPOINT (port 0 allowed), prints "READY <endpoint>", then
 * receives until N messages or 3 s of silence, and prints
 *   DONE <count> <first_ns> <last_ns> <unique>
 * (CLOCK_REALTIME of the first and last message; unique counts distinct
 * "seq:" numbers below N). In latency mode each message's "ts:<ns>" send
 * time gives a latency, and it also prints
 *   LAT <p50_us> <p99_us> <p999_us> <max_us>
 * Build: cc -O2 pull.c /usr/lib/x86_64-linux-gnu/libzmq.so.5 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *zmq_ctx_new(void);
void *zmq_socket(void *, int);
int zmq_bind(void *, const char *);
int zmq_recv(void *, void *, size_t, int);
int zmq_setsockopt(void *, int, const void *, size_t);
int zmq_getsockopt(void *, int, void *, size_t *);

#define ZMQ_PULL 7
#define ZMQ_RCVTIMEO 27
#define ZMQ_LAST_ENDPOINT 32

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

/* number after tag in buf[0:n], or -1 */
static long long field(const char *buf, int n, const char *tag) {
	int tl = strlen(tag);
	for (int i = 0; i + tl < n; i++) {
		if (memcmp(buf + i, tag, tl) == 0) {
			long long v = 0;
			int j = i + tl, d = 0;
			for (; j < n && buf[j] >= '0' && buf[j] <= '9'; j++, d++)
				v = v * 10 + (buf[j] - '0');
			return d ? v : -1;
		}
	}
	return -1;
}

int main(int argc, char **argv) {
	if (argc < 4) {
		fprintf(stderr, "usage: pull ENDPOINT N count|latency\n");
		return 2;
	}
	long n = atol(argv[2]);
	int lat = strcmp(argv[3], "latency") == 0;
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_PULL);
	if (zmq_bind(s, argv[1]) != 0) {
		fprintf(stderr, "bind %s failed\n", argv[1]);
		return 1;
	}
	char ep[256];
	size_t epl = sizeof ep;
	zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &epl);
	printf("READY %s\n", ep);
	fflush(stdout);
	unsigned char *seen = calloc(n, 1);
	long long *lats = lat ? malloc(sizeof(long long) * n) : NULL;
	long count = 0, unique = 0, nlat = 0;
	long long first = 0, last = 0;
	char buf[65536];
	int infinite = -1, idle = 3000;
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &infinite, sizeof infinite);
	while (count < n) {
		int k = zmq_recv(s, buf, sizeof buf, 0);
		if (k < 0)
			break; /* 3 s without a message: report what came */
		last = now_ns();
		if (count == 0) {
			first = last;
			zmq_setsockopt(s, ZMQ_RCVTIMEO, &idle, sizeof idle);
		}
		count++;
		if (k > (int)sizeof buf)
			k = sizeof buf;
		long long seq = field(buf, k, "seq:");
		if (seq >= 0 && seq < n && !seen[seq]) {
			seen[seq] = 1;
			unique++;
		}
		if (lat) {
			long long ts = field(buf, k, "ts:");
			if (ts > 0)
				lats[nlat++] = last - ts;
		}
	}
	printf("DONE %ld %lld %lld %ld\n", count, first, last, unique);
	if (lat && nlat > 0) {
		qsort(lats, nlat, sizeof *lats, cmp);
		printf("LAT %.1f %.1f %.1f %.1f\n", lats[nlat / 2] / 1e3, lats[nlat * 99 / 100] / 1e3,
		       lats[nlat * 999 / 1000] / 1e3, lats[nlat - 1] / 1e3);
	}
	fflush(stdout);
	return 0;
}
