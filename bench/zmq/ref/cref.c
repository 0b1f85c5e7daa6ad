/* bench/zmq.sh's C reference: libzmq <-> libzmq with no language
 * overhead, same flags and output as main.go. libzmq's headers are not
 * installed here, so the few prototypes and constants are declared below
 * (stable ABI, zmq.h of libzmq 4.x). Build: cc -O2 cref.c libzmq.so.5 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

void *zmq_ctx_new(void);
int zmq_ctx_term(void *);
void *zmq_socket(void *, int);
int zmq_close(void *);
int zmq_bind(void *, const char *);
int zmq_connect(void *, const char *);
int zmq_send(void *, const void *, size_t, int);
int zmq_recv(void *, void *, size_t, int);
int zmq_setsockopt(void *, int, const void *, size_t);
int zmq_getsockopt(void *, int, void *, size_t *);

#define ZMQ_PUB 1
#define ZMQ_SUB 2
#define ZMQ_PULL 7
#define ZMQ_PUSH 8
#define ZMQ_SUBSCRIBE 6
#define ZMQ_RCVTIMEO 27
#define ZMQ_LINGER 17
#define ZMQ_SNDHWM 23
#define ZMQ_RCVHWM 24
#define ZMQ_LAST_ENDPOINT 32
#define ZMQ_CURVE_SERVER 47
#define ZMQ_CURVE_PUBLICKEY 48
#define ZMQ_CURVE_SECRETKEY 49
#define ZMQ_CURVE_SERVERKEY 50

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	const char *role = "", *bind = "", *conn = "";
	const char *curve_server = "", *curve_client = "";
	long n = 1000000, size = 200;
	int hwm = 0, hwm_set = 0, stall = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(a, "-role")) role = v, i++;
		else if (!strcmp(a, "-bind")) bind = v, i++;
		else if (!strcmp(a, "-connect")) conn = v, i++;
		else if (!strcmp(a, "-n")) n = atol(v), i++;
		else if (!strcmp(a, "-size")) size = atol(v), i++;
		else if (!strcmp(a, "-hwm")) hwm = atoi(v), hwm_set = 1, i++;
		else if (!strcmp(a, "-stall")) stall = 1;
		else if (!strcmp(a, "-curve-server")) curve_server = v, i++;
		else if (!strcmp(a, "-curve-client")) curve_client = v, i++;
		else if (a[0] == '-' && i + 1 < argc && argv[i + 1][0] != '-') i++; /* -subs, -stalled, -batch */
	}
	int type = !strcmp(role, "push") ? ZMQ_PUSH : !strcmp(role, "pull") ? ZMQ_PULL
		: !strcmp(role, "pub") ? ZMQ_PUB : ZMQ_SUB;
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, type);
	if (hwm_set) { /* 0: no limit */
		zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
		zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
	}
	if (*curve_server) { /* SECRET (Z85): a CURVE server admitting any client */
		int one = 1;
		zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
		if (zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, curve_server, 40)) { perror("curve secret key"); return 1; }
	}
	if (*curve_client) { /* SERVERKEY,PUBLIC,SECRET (Z85) */
		if (strlen(curve_client) != 122 || zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, curve_client, 40)
		    || zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, curve_client + 41, 40)
		    || zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, curve_client + 82, 40)) { perror("curve client keys"); return 1; }
	}
	if (type == ZMQ_SUB) zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
	if (*bind) {
		char ep[256];
		size_t l = sizeof ep;
		if (zmq_bind(s, bind)) { perror("bind"); return 1; }
		zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &l);
		printf("READY %s\n", ep);
		fflush(stdout);
	}
	if (*conn && zmq_connect(s, conn)) { perror("connect"); return 1; }
	char *buf = calloc(1, size > 65536 ? size : 65536);
	char line[64];
	if (type == ZMQ_PUSH || type == ZMQ_PUB) {
		if (!fgets(line, sizeof line, stdin)) return 1; /* "go" */
		for (long i = 0; i < n; i++) zmq_send(s, buf, size, 0);
		while (fgets(line, sizeof line, stdin)) {}
		if (type == ZMQ_PUB) {
			struct rusage ru;
			getrusage(RUSAGE_SELF, &ru);
			printf("DROPS -1 MAXRSS_KB %ld\n", ru.ru_maxrss);
		}
	} else if (stall) {
		while (fgets(line, sizeof line, stdin)) {}
	} else {
		int t = 60000;
		long got = 0;
		double first = 0, last = 0;
		zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
		if (zmq_recv(s, buf, 65536, 0) >= 0) {
			first = last = now();
			got = 1;
			t = 2000;
			zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
			while (got < n && zmq_recv(s, buf, 65536, 0) >= 0) got++;
			last = now();
			if (got < n) last -= 2.0;
		}
		printf("RATE %.0f RECV %ld\n", last > first ? (got - 1) / (last - first) : 0.0, got);
	}
	fflush(stdout);
	int zero = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
	zmq_close(s);
	zmq_ctx_term(ctx);
	return 0;
}
