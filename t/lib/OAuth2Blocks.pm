package OAuth2Blocks;

# The block preprocessor every Test::Nginx suite of the module uses: the
# suite's defaults for the sections a block leaves out, and, for every
# block, no [alert], [crit] or [emerg] in the error log unless the block
# says otherwise.
#
#   use OAuth2Blocks;
#   OAuth2Blocks::defaults(
#       http_config => "oauth2_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n",
#       config      => $locations,
#       request     => "GET /api\n",
#       error_code  => 401,
#       init        => "OAuth2Authz::seed_client('c', 's');\n",
#       more        => sub { my $block = shift; ... },
#   );

use strict;
use warnings;

our $NoErrors = "[alert]\n[crit]\n[emerg]\n";

sub defaults {
    my (%d) = @_;
    my $more = delete $d{more};

    main::add_block_preprocessor(sub {
        my $block = shift;

        for my $k (sort keys %d) {
            next if defined $block->$k;
            $block->set_value($k, $d{$k});
        }

        if (!defined $block->no_error_log) {
            $block->set_value('no_error_log', $NoErrors);
        }

        # under valgrind, a worker is slow to make its first Redis
        # connection: the default oauth2_redis_timeout would time it out
        if ($ENV{TEST_NGINX_USE_VALGRIND} && defined $block->http_config
            && $block->http_config =~ /oauth2_redis\s/
            && $block->http_config !~ /oauth2_redis_timeout/)
        {
            $block->set_value('http_config', $block->http_config
                              . "    oauth2_redis_timeout 10s;\n");
        }

        $more->($block) if $more;
    });
}

1;
