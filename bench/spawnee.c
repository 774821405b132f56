/* spawnee: the program bench/calibrate's spawn floor starts. It returns at once,
 * so what is timed is the cost of a new process and its image, nothing more. */
int main(void)
{
    return 0;
}
