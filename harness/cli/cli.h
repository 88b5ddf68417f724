/* ctxbench's subcommands. Each lives in its own harness/cmd_*.c and registers itself, so adding a
 * command is one file. Every command answers --help, and treats unknown flags as errors. */
#ifndef CB_CLI_H
#define CB_CLI_H

typedef struct {
    const char *name;
    const char *summary; /* one line for `ctxbench --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the command name; returns the exit status */
} cb_command;

void cb_command_register(const cb_command *c);
/* Dispatch argv[1] to its command (used by main; tests may call it in-process). */
int cb_cli_main(int argc, char **argv);

#define CB_REGISTER_COMMAND(cmd) \
    __attribute__((constructor)) static void cb_register_cmd_##cmd(void) { cb_command_register(&(cmd)); }

#endif
