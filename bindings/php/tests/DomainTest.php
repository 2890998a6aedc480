<?php

declare(strict_types=1);

use Libmemcache\ConfigException;
use Libmemcache\Memcached;
use PHPUnit\Framework\TestCase;

/** A handle on a domain follows the list mcadmin edits, from its next call on, with no restart. */
final class DomainTest extends TestCase
{
    public function testFollowsTheDomainAsMcadminChangesIt(): void
    {
        $domain = 'php' . bin2hex(random_bytes(3));
        TestEnv::mcadmin('--domain', $domain, 'set', TestEnv::$serverA);
        $mc = new Memcached(domain: $domain);
        $this->assertSame([TestEnv::$serverA], array_map(fn ($s) => "{$s['host']}:{$s['port']}", $mc->getServerList()));
        $this->assertTrue($mc->set("$domain:k", 'on A'));
        $this->assertSame([0, 'on A'], TestEnv::rawGet(TestEnv::$serverA, "$domain:k"));

        TestEnv::mcadmin('--domain', $domain, 'set', TestEnv::$serverB);
        $this->assertFalse($mc->get("$domain:k"), 'now asks B, which does not have it');
        $this->assertTrue($mc->set("$domain:k", 'on B'));
        $this->assertSame([0, 'on B'], TestEnv::rawGet(TestEnv::$serverB, "$domain:k"));
        $this->assertSame([TestEnv::$serverB], array_keys($mc->getVersion()));
        $mc->close();
    }

    public function testADomainHandleRefusesItsOwnServersAndDistribution(): void
    {
        $mc = new Memcached(domain: 'php-refuses');
        try {
            $mc->addServer('127.0.0.1', 11211);
            $this->fail('addServer on a domain handle must throw');
        } catch (ConfigException $e) {
            $this->assertStringContainsString('follows a domain', $e->getMessage());
        }
        $this->assertFalse($mc->setOption(Memcached::OPT_DISTRIBUTION, Memcached::DISTRIBUTION_CONSISTENT));
        $this->assertSame(Memcached::RES_INVALID_ARGUMENTS, $mc->getResultCode());
        $this->assertStringContainsString('domain', $mc->getResultMessage());
        $mc->close();
    }
}
