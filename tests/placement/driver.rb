# frozen_string_literal: true

# The Ruby binding's side of tests/placement_across_front_ends.rs. ARGV: "list SERVERS" (the
# default distribution), "list SERVERS DISTRIBUTION" or "domain NAME". Each line of standard
# input is "set KEY VALUE" (stored, or the driver fails) or "get KEY" (prints "KEY VALUE" when
# found, nothing on a miss).
require "memcache"

mode, what, distribution = ARGV
mc = case mode
     when "list" then Memcache.new(servers: what.split(","), distribution: distribution)
     when "domain" then Memcache.new(domain: what)
     else abort "driver.rb: list SERVERS [DISTRIBUTION] | domain NAME"
     end
$stdout.sync = true
$stdin.each_line do |line|
  op, key, value = line.chomp.split(" ", 3)
  case op
  when "set" then mc.set(key, value) || abort("driver.rb: #{key} not stored")
  when "get"
    found = mc.get(key)
    puts "#{key} #{found}" if found
  else abort "driver.rb: unknown operation #{op.inspect}"
  end
end
