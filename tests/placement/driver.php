<?php

declare(strict_types=1);

/*
 * The PHP package's side of tests/placement_across_front_ends.rs. Arguments: "list SERVERS" (the
 * default distribution), "list SERVERS DISTRIBUTION" or "domain NAME". Each line of standard
 * input is "set KEY VALUE" (stored, or the driver fails) or "get KEY" (prints "KEY VALUE" when
 * found, nothing on a miss).
 */

// The package's PSR-4 mapping, as Composer's autoloader has it, without a vendor directory.
spl_autoload_register(function (string $class): void {
    if (str_starts_with($class, 'Libmemcache\\')) {
        require __DIR__ . '/../../bindings/php/src/' . substr($class, strlen('Libmemcache\\')) . '.php';
    }
});

use Libmemcache\Memcached;

[$mode, $what, $distribution] = array_pad(array_slice($argv, 1), 3, null);
$mc = match ($mode) {
    'list' => new Memcached(servers: explode(',', (string) $what), options: $distribution === null ? [] : [
        Memcached::OPT_DISTRIBUTION => Memcached::DISTRIBUTION_NAMES[$distribution]
            ?? throw new \InvalidArgumentException("driver.php: unknown distribution $distribution"),
    ]),
    'domain' => new Memcached(domain: $what),
    default => throw new \InvalidArgumentException('driver.php: list SERVERS [DISTRIBUTION] | domain NAME'),
};
while (($line = fgets(STDIN)) !== false) {
    $parts = explode(' ', rtrim($line, "\n"), 3);
    switch ($parts[0]) {
        case 'set':
            if (!$mc->set($parts[1], $parts[2])) {
                fwrite(STDERR, "driver.php: {$parts[1]} not stored\n");
                exit(1);
            }
            break;
        case 'get':
            $found = $mc->get($parts[1]);
            if ($found !== false) {
                echo "{$parts[1]} $found\n";
            }
            break;
        default:
            fwrite(STDERR, "driver.php: unknown operation {$parts[0]}\n");
            exit(1);
    }
}
