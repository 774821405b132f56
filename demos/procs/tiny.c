/* procs-tiny: the smallest program to start, for the spawn and vfork-exec
 * variants: what they time is the start, not the program. */
int main(void)
{
    return 0;
}
