#include "greet.h"

const char *greet_message(void)
{
        return "Hello from libgreet, built by cairn!";
}
