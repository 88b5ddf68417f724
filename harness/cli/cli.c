/* The registry of subcommands (filled by CB_REGISTER_COMMAND constructors) and the dispatcher. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/kernels/kernels.h"

#define CB_MAX_COMMANDS 32
static const cb_command *commands[CB_MAX_COMMANDS];
static int n_commands;

void cb_command_register(const cb_command *c) {
    if (n_commands < CB_MAX_COMMANDS) commands[n_commands++] = c;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const cb_command *const *)a)->name, (*(const cb_command *const *)b)->name);
}

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench COMMAND [options]   (ctxbench COMMAND --help for its options)\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++) fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
}

int cb_cli_main(int argc, char **argv) {
    qsort(commands, (size_t)n_commands, sizeof commands[0], by_name);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    char why[256];
    if (cb_kernels_check_env(why, sizeof why) != 0) {
        fprintf(stderr, "ctxbench: %s\n", why);
        return 1;
    }
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(commands[i]->name, argv[1])) return commands[i]->run(argc - 1, argv + 1);
    fprintf(stderr, "ctxbench: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
