#include "cli.h"

#include <stdio.h>

int cmd_serve(const struct cli *c)
{
	fprintf(stderr, "agentgate serve: the server is not part of this build yet\n");
	return 1;
}
