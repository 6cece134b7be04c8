#ifndef GREET_H
#define GREET_H
/* The greeting every cairn example prints. */
const char *greet_message(void);
#endif
