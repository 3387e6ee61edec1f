/*
 * harness_util.c: small helpers every integration suite needs: a clock, a
 * ping that reports the broker's answer, a plain TCP connection to the
 * broker's port, and a count of the broker's open descriptors.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"

long long
harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
harness_ping(struct onecard_conn *conn)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *reply = NULL;
	int code = -1;

	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	if (onecard_call(conn, &req, &reply) == ONECARD_OK) {
		code = reply->code;
		onecard_reply_free(reply);
	}
	return code;
}

int
harness_ping_as(struct harness *h, const char *cn)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char err[512];
	int code;

	harness_options(h, cn, &opt);
	opt.connect_timeout_ms = 5000;
	opt.call_timeout_ms = 5000;
	if (onecard_connect(&opt, &conn, err, sizeof(err)) != ONECARD_OK)
		return -1;
	code = harness_ping(conn);
	onecard_close(conn);
	return code;
}

int
harness_tcp_connect(int port)
{
	struct sockaddr_in sin;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
harness_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}
