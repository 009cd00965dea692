/* tiny: a static test server for wharf's docker tests. `tiny exit N`
   exits with N; otherwise it serves `greeting=$GREETING` on 0.0.0.0:$PORT
   until SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "exit") == 0) {
        printf("tiny: exiting with %s\n", argv[2]);
        fflush(stdout);
        return atoi(argv[2]);
    }
    const char *port = getenv("PORT");
    const char *greeting = getenv("GREETING");
    if (!port) { fprintf(stderr, "tiny: PORT is not set\n"); return 2; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(port));
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16)) { perror("tiny: bind"); return 1; }
    printf("tiny: listening on 0.0.0.0:%s\n", port);
    fflush(stdout);
    while (!stop) {
        int c = accept(fd, 0, 0);
        if (c < 0) continue;
        char buf[2048];
        if (read(c, buf, sizeof buf) < 0) { close(c); continue; }
        char out[512];
        int n = snprintf(out, sizeof out, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\ngreeting=%s\n", greeting ? greeting : "");
        if (write(c, out, n) < 0) {}
        close(c);
    }
    printf("tiny: stopped\n");
    fflush(stdout);
    return 0;
}
