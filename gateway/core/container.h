/* container: the object that embeds a member, from a pointer to the member (timers,
 * waiters and queue items are embedded in their owners). Pure. */
#ifndef AG_CONTAINER_H
#define AG_CONTAINER_H
#include <stddef.h>

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#endif
