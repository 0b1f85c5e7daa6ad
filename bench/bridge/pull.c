/* bench/bridge.sh's consumer: a libzmq PULL that counts messages and exits
 * once it has N, so the benchmark's consumer costs a fraction of a core
 * (the pyzmq one takes a whole core at ~359k msg/s, which capped
 * fire-and-forget on 2 cores).
 *
 *   pull ENDPOINT N      e.g. pull tcp://127.0.0.1:* 100000
 *
 * Prints "READY <bound endpoint>" once bound, "C <count>" every 65536
 * messages, and "DONE <count>" when it has N (exit 0). Exits 1 if nothing
 * arrives for 120 s. libzmq's headers are not installed here, so the few
 * prototypes and constants are declared below (stable ABI, zmq.h of libzmq
 * 4.x). Build: cc -O2 -o pull pull.c /usr/lib/x86_64-linux-gnu/libzmq.so.5 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *zmq_ctx_new(void);
int zmq_ctx_term(void *);
void *zmq_socket(void *, int);
int zmq_close(void *);
int zmq_bind(void *, const char *);
int zmq_recv(void *, void *, size_t, int);
int zmq_setsockopt(void *, int, const void *, size_t);
int zmq_getsockopt(void *, int, void *, size_t *);
int zmq_errno(void);
const char *zmq_strerror(int);

#define ZMQ_PULL 7
#define ZMQ_RCVMORE 13
#define ZMQ_LINGER 17
#define ZMQ_RCVTIMEO 27
#define ZMQ_LAST_ENDPOINT 32

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: pull ENDPOINT N\n");
		return 2;
	}
	long n = atol(argv[2]);
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_PULL);
	int linger = 0, timeout = 120000;
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
	if (zmq_bind(s, argv[1]) != 0) {
		fprintf(stderr, "pull: bind %s: %s\n", argv[1], zmq_strerror(zmq_errno()));
		return 1;
	}
	char ep[256];
	size_t len = sizeof ep;
	zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
	printf("READY %s\n", ep);
	fflush(stdout);
	char buf[256]; /* only counted: longer frames are truncated */
	long count = 0;
	while (count < n) {
		if (zmq_recv(s, buf, sizeof buf, 0) < 0) {
			fprintf(stderr, "pull: recv after %ld messages: %s\n", count, zmq_strerror(zmq_errno()));
			printf("C %ld\n", count);
			return 1;
		}
		int more = 0;
		size_t ml = sizeof more;
		zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
		if (more)
			continue; /* a message is counted at its last frame */
		if (++count % 65536 == 0) {
			printf("C %ld\n", count);
			fflush(stdout);
		}
	}
	printf("DONE %ld\n", count);
	fflush(stdout);
	zmq_close(s);
	zmq_ctx_term(ctx);
	return 0;
}
