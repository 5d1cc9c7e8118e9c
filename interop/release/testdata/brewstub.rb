# A stand-in for the part of Homebrew's formula DSL keyless.rb uses, so the
# test can load the rendered formula in a plain Ruby and see what Homebrew
# would: for each OS and CPU, the url and sha256 it picks, what install
# puts where, the service's command and the test's command. Usage:
#   ruby brewstub.rb keyless.rb VERSION   (prints one JSON object)
require "json"

# Path is a Pathname-like value: bin/"keyless" is "BIN/keyless".
class Path
  def initialize(s) = @s = s
  def /(other) = Path.new("#{@s}/#{other}")
  def to_s = @s
  def to_str = @s
end

$rec = nil

class Formula
  class << self
    def desc(s) = $rec["desc"] = s
    def homepage(s) = $rec["homepage"] = s
    def license(s) = $rec["license"] = s
    def version(s) = $rec["version"] = s
    def url(s, **) = ($rec["url"] ||= []) << s
    def sha256(s) = ($rec["sha256"] ||= []) << s
    def on_macos = ($rec["os"] == "macos" && yield)
    def on_linux = ($rec["os"] == "linux" && yield)
    def on_arm = ($rec["arch"] == "arm" && yield)
    def on_intel = ($rec["arch"] == "intel" && yield)
    def service(&b) = $rec["service_block"] = b
    def test(&b) = $rec["test_block"] = b
  end

  def bin = BinPath.new("BIN")
  def etc = Path.new("ETC")
  def var = Path.new("VAR")
  def opt_bin = Path.new("OPT_BIN")
  def version = $rec["version"]
  def generate_completions_from_executable(*args, **opts)
    ($rec["completions"] ||= []) << args.map(&:to_s) + opts.map { |k, v| "#{k}=#{v}" }
  end
  def shell_output(cmd, status = 0)
    ($rec["test_commands"] ||= []) << cmd
    "keyless v#{version}\ncommit 0123\ngo1.26.0 darwin/arm64\n"
  end
  def assert_match(want, got)
    raise "test do: #{want.inspect} does not match #{got.inspect}" unless got.match?(want)
    ($rec["test_matches"] ||= []) << want.to_s
  end
end

class BinPath < Path
  def install(*names) = ($rec["bin_install"] ||= []).concat(names.map(&:to_s))
end

class ServiceDSL
  def initialize(f) = @f = f
  def opt_bin = @f.opt_bin
  def etc = @f.etc
  def var = @f.var
  def run(cmd) = $rec["service"]["run"] = Array(cmd).map(&:to_s)
  def keep_alive(v) = $rec["service"]["keep_alive"] = v
  def log_path(p) = $rec["service"]["log_path"] = p.to_s
  def error_log_path(p) = $rec["service"]["error_log_path"] = p.to_s
end

file = ARGV.fetch(0)
out = {}
[%w[macos arm], %w[macos intel], %w[linux arm], %w[linux intel]].each do |os, arch|
  $rec = { "os" => os, "arch" => arch, "service" => {} }
  Object.send(:remove_const, :Keyless) if Object.const_defined?(:Keyless)
  load file
  f = Keyless.new
  f.install
  $rec["caveats"] = f.caveats
  ServiceDSL.new(f).instance_eval(&$rec.delete("service_block"))
  f.instance_eval(&$rec.delete("test_block"))
  out["#{os}-#{arch}"] = $rec
end
puts JSON.generate(out)
